"""The registry of datasets: name -> :class:`~anytouch.data.spec.DatasetSpec`.

It starts with the package's own datasets (:data:`anytouch.data.catalog.SPECS`); :func:`register` adds one more
(a new source module declares its spec and calls ``register(SPEC)`` once, e.g. from the script that uses it). The
builders, the synthetic twin, ``prepare``, ``verify`` and the config checks all look datasets up here.
"""
from __future__ import annotations

import difflib
from typing import Dict, Optional, Tuple

from .catalog import SPECS
from .spec import DatasetSpec

__all__ = ["DATASETS", "PRETRAIN_SOURCES", "PROBE_NAMES", "register", "unregister", "get", "specs", "names"]

DATASETS: Dict[str, DatasetSpec] = {spec.name: spec for spec in SPECS}
# the package's own pre-training sources (original order, docs/original/data.md#loader-contents) and probe sets
# (docs/original/probes.md#probe-datasets)
PRETRAIN_SOURCES = tuple(s.name for s in SPECS if s.kind == "pretrain")
PROBE_NAMES = tuple(s.name for s in SPECS if s.kind == "probe")


def register(spec: DatasetSpec, overwrite: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (``overwrite=True`` replaces a dataset of the same name); returns it."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register() takes a DatasetSpec, got {type(spec).__name__}")
    if spec.name in DATASETS and not overwrite:
        raise ValueError(f"dataset {spec.name!r} is already registered (pass overwrite=True to replace it)")
    DATASETS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove dataset ``name`` (registered with :func:`register`); the package's own datasets cannot be removed."""
    if name in PRETRAIN_SOURCES + PROBE_NAMES:
        raise ValueError(f"dataset {name!r} is one of the package's own and cannot be unregistered")
    get(name)
    del DATASETS[name]


def get(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ValueError naming the registered datasets (and the closest one) if unknown."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; expected one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def specs(kind: Optional[str] = None) -> Tuple[DatasetSpec, ...]:
    """The registered specs (of one ``kind``: ``pretrain`` | ``probe``), in registration order."""
    return tuple(s for s in DATASETS.values() if kind is None or s.kind == kind)


def names(kind: Optional[str] = None) -> Tuple[str, ...]:
    """The registered dataset names (of one ``kind``), in registration order."""
    return tuple(s.name for s in specs(kind))
