"""Reading pickled release files without running code from them.

Some releases ship their index or frames as pickles (the Feel split ``split_<k>.npy``, the Sparsh force / slip /
pose files). :class:`NumpyOnlyUnpickler` rebuilds numpy arrays and scalars and builtin containers (lists, dicts,
tuples, str, bytes, numbers) and refuses every other global, so a crafted file cannot run code.
"""
from __future__ import annotations

import os
import pickle

from .io import DataError

__all__ = ["NumpyOnlyUnpickler", "load_pickle"]


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays/scalars and builtin containers only (no other globals)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays and plain "
                                     "containers are allowed in this file")


def load_pickle(path: str, what: str):
    """Load the pickle ``path`` (a ``what``, named in errors) with :class:`NumpyOnlyUnpickler`; DataError if it is
    missing, truncated or holds anything but numpy arrays and plain containers."""
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path}", path)
    try:
        with open(path, "rb") as f:
            return NumpyOnlyUnpickler(f).load()
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise DataError(f"cannot read {what} {path}: {e}", path) from e
