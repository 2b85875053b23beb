"""Write a small data root in the ORIGINAL on-disk layout (docs/original/data.md#text, #per-dataset-layout,
docs/original/probes.md#probe-datasets) with synthetic frames.

The real loaders (and ``anytouch.data.verify``) can then be exercised end to end without a download. Each dataset's
spec names the writer of its part (``DatasetSpec.tree``); frames come from :mod:`anytouch.data.synthetic_render`
(same sensor looks, materials and labels as the in-memory synthetic sets) through
:class:`~anytouch.data.tree.TreeWriter`; every recording is an object pressed in over ``frames`` frames.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

from ..progress import progress as tqdm  # quiet off a terminal

from .registry import specs
from .tree import TreeWriter

__all__ = ["write_synthetic_tree", "tree_parts"]


def tree_parts() -> Dict[str, Callable[[TreeWriter], None]]:
    """``{part name: writer}`` of every registered dataset that declares a tree (``DatasetSpec.tree``), in
    registration order; a part shared by several datasets (``objectfolder``: OF1 and OF2) is listed once."""
    parts: Dict[str, Callable[[TreeWriter], None]] = {}
    for spec in specs():
        if spec.tree is not None:
            parts.setdefault(spec.tree[0], spec.tree[1])
    return parts


def write_synthetic_tree(root: str, names: Optional[Sequence[str]] = None, sequences: int = 3, frames: int = 6,
                         size: int = 64, seed: int = 0, progress: bool = True) -> Dict[str, int]:
    """Write synthetic data under ``root`` in the original layout; returns ``{name: files written}``.

    Args:
        names: among :func:`tree_parts` (the nine pre-training sources, ``feel``, ``objectfolder`` = OF1 + OF2 and
            any registered dataset declaring a tree); default all. ``tag`` also writes the TAG probe lists
            (train/test, roughness; label -1 on first frames).
        sequences: recordings (objects) per source; frames: frames per recording; size: frame side in pixels.
    """
    parts = tree_parts()
    names = list(parts if names is None else names)
    unknown = sorted(set(names) - set(parts))
    if unknown:
        raise ValueError(f"unknown tree part(s) {unknown}; expected among {tuple(parts)}")
    w = TreeWriter(root, seed, size, sequences, frames)
    out = {}
    for name in tqdm(names, desc="synthetic tree", unit="dataset", disable=not progress):
        before = w.count
        parts[name](w)
        out[name] = w.count - before
    return out
