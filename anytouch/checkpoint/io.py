"""Safe checkpoint I/O: weights-only loading, atomic saving, safetensors.

Every load in anytouch goes through :func:`safe_load`, which never runs arbitrary pickled code:
``torch.load(weights_only=True)`` with an explicit allow-list (``argparse.Namespace`` only for the original
AnyTouch files, whose ``args`` entry is a Namespace; spec 2.3 / 6.4). ``.safetensors`` files are read with
safetensors. Saves are atomic (temp file in the same folder, fsync, ``os.replace``), so a crash never leaves a
truncated checkpoint under the final name.
"""
from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import torch

__all__ = [
    "UnsafeCheckpointError",
    "ORIGINAL_ALLOW",
    "safe_load",
    "read_safetensors",
    "safetensors_metadata",
    "atomic_save",
    "save_safetensors",
]

PathLike = Union[str, os.PathLike]

# The only non-tensor class the original AnyTouch checkpoints pickle (their ``args`` entry).
ORIGINAL_ALLOW = (argparse.Namespace,)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the weights-only allow-list; it was not unpickled."""


def _unsafe_globals(path: Path) -> list:
    if not zipfile.is_zipfile(path):
        return []  # legacy (pre-1.6) pickle: torch cannot list its globals statically
    return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def safe_load(path: PathLike, allow: Iterable[type] = (), mmap: Optional[bool] = None) -> Any:
    """Load a checkpoint without executing pickled code.

    Args:
        path: a ``torch.save`` file (.pt/.pth/.bin/...) or a ``.safetensors`` file.
        allow: classes (besides torch's weights-only defaults) that may be unpickled, e.g. :data:`ORIGINAL_ALLOW`.
        mmap: memory-map the tensor storages (default: on for zip-format torch files), so that only the tensors
            actually used are read; an original stage-2 file also holds ~9 GB of optimizer state.

    Returns:
        The loaded object (a dict of CPU tensors for ``.safetensors``).

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the file pickles a class or function outside the allow-list (named in the message);
            nothing from it is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    allow = tuple(allow)
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in allow}
        offending = [g for g in _unsafe_globals(path) if g not in allowed]
        what = f"pickled objects {offending}" if offending else "a pickled object"
        detail = next((ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln), "")
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains {what} outside the weights-only allow-list "
            f"(allowed: torch tensors and plain containers{', ' + ', '.join(sorted(allowed)) if allowed else ''}). "
            f"Nothing from the file was executed. If you trust the file, convert it yourself with "
            f"torch.load(weights_only=False) and save its tensors." + (f" [torch: {detail}]" if detail else "")
        ) from None


def read_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (CPU)."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def safetensors_metadata(path: PathLike) -> Dict[str, str]:
    """The string->string metadata header of a ``.safetensors`` file (empty dict if none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return dict(f.metadata() or {})


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_path(path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return  # some platforms cannot open a directory; the file itself is synced
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """``write(file, tmp_path)`` into a temp file next to ``path``, fsync it, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f, tmp)
        # by path, not through f: a writer given tmp_path (safetensors) may have replaced the file
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the usual permissions
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_path(path.parent, directory=True)  # make the rename itself durable


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to a temp file in the target folder, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    _atomic_write(path, lambda f, tmp: torch.save(obj, f))
    return path


def _contiguous_unshared(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Detached CPU tensors, contiguous, with no two sharing storage (safetensors refuses shared storage)."""
    out: Dict[str, torch.Tensor] = {}
    seen = set()
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state dict entry {k!r} is a {type(v).__name__}, expected a tensor")
        t = v.detach().to("cpu")
        storage = t.untyped_storage()
        whole = t.is_contiguous() and t.numel() * t.element_size() == storage.nbytes()
        if not whole or storage.data_ptr() in seen:  # a view, a slice or a tied weight: give it its own storage
            t = t.contiguous().clone()
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write tensors to a ``.safetensors`` file atomically.

    Non-contiguous tensors and tensors sharing storage (tied weights, views) are copied first. ``metadata`` must
    map str to str (safetensors' header format).
    """
    from safetensors.torch import save_file

    meta = dict(metadata or {})
    bad = {k: v for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise TypeError(f"safetensors metadata must map str to str; offending entries: {bad}")
    tensors = _contiguous_unshared(state_dict)
    path = Path(path)
    _atomic_write(path, lambda f, tmp: save_file(tensors, tmp, metadata=meta))
    return path
