"""``build_dataset`` / ``build_pretrain_set``: the entry points of docs/design.md ("Data sample contract").

Datasets are built through a registry: ``DATASETS[name] = builder`` with ``builder(split=..., root=..., **options)
-> Dataset``. The nine pre-training sources of AnyTouch (spec 4.5) register themselves here; other modules (the
probe datasets) add theirs with :func:`register_dataset`. ``root="synthetic"`` dispatches every name to
``anytouch.data.synthetic.build_synthetic(name, split=split, **options)``.

Options handled here, for every builder: ``on_error`` ("raise" | "skip", see :mod:`anytouch.data.skip`) and, for
``tacquad`` with a cross kind, ``pairs`` (default True: wrap the frames into anchor/positive/negative triplets,
spec 3.3; False: the raw frame set) and ``cross_seed``. The remaining options go to the builder (pre-training
loaders: ``image_size, vision_size, clip, stage, train, path, text_dir, antialias, jitter``; TacQuad also
``parts``).
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

from torch.utils.data import ConcatDataset, Dataset

from .cloth import Cloth
from .config import PRETRAIN_SOURCES, DataConfig
from .cross import CrossSensorDataset
from .octopi import Octopi
from .of_real import ObjectFolderReal
from .skip import SkipErrors
from .tacquad import TacQuad
from .tag import TouchAndGo
from .tvl import SSVTP, TVL
from .visgel import VisGel
from .ycb import YCBSlide

__all__ = ["DATASETS", "PRETRAIN_LOADERS", "register_dataset", "build_dataset", "build_pretrain_set",
           "IMAGE_ONLY_SOURCES"]

Builder = Callable[..., Dataset]
DATASETS: Dict[str, Builder] = {}
IMAGE_ONLY_SOURCES = ("ssvtp",)  # no video / cross_video samples (spec 4.5)
CROSS_KINDS = ("cross_image", "cross_video")


def register_dataset(name: str, builder: Builder, overwrite: bool = False) -> None:
    """Make ``build_dataset(name, ...)`` call ``builder(split=split, root=root, **options)``."""
    if name in DATASETS and not overwrite:
        raise ValueError(f"dataset {name!r} is already registered (pass overwrite=True to replace it)")
    DATASETS[name] = builder


def _loader(cls) -> Builder:
    def build(split: str = "train", root: Optional[str] = None, **options) -> Dataset:
        return cls(root, split=split, **options)

    build.__doc__ = cls.__doc__
    return build


# source name -> loader class of the nine pre-training sources (``default_dirs``: their folders under the root)
PRETRAIN_LOADERS = {cls.source: cls for cls in (TacQuad, TouchAndGo, VisGel, Cloth, TVL, SSVTP, YCBSlide,
                                                ObjectFolderReal, Octopi)}
for _name, _cls in PRETRAIN_LOADERS.items():
    register_dataset(_name, _loader(_cls))


def build_dataset(name: str, split: str = "train", root: Optional[str] = None, **options) -> Dataset:
    """Build dataset ``name`` (see ``DATASETS``) from ``root`` (default: ``$ANYTOUCH_DATA_ROOT`` or
    ``tactile_datasets``), or the synthetic equivalent when ``root == "synthetic"``.

    Returns a Dataset of sample dicts (docs/design.md); wrapped in :class:`~anytouch.data.skip.SkipErrors` when
    ``on_error="skip"``.
    """
    on_error = options.pop("on_error", "raise")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    pairs = options.pop("pairs", True) if name == "tacquad" else True
    cross_seed = options.pop("cross_seed", 0) if name == "tacquad" else 0
    root = root if root is not None else os.environ.get("ANYTOUCH_DATA_ROOT", "tactile_datasets")
    if root == "synthetic":
        from .synthetic import build_synthetic  # the synthetic module imports this package; import lazily

        ds = build_synthetic(name, split=split, **options)
    else:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(sorted(DATASETS))}")
        ds = DATASETS[name](split=split, root=root, **options)
    if name == "tacquad" and pairs and options.get("clip") in CROSS_KINDS:
        ds = CrossSensorDataset(ds, seed=cross_seed)
    return SkipErrors(ds) if on_error == "skip" else ds


def _source_options(data_cfg: DataConfig, name: str) -> dict:
    if data_cfg.root == "synthetic":
        return {"synthetic": data_cfg.synthetic}
    return {"path": data_cfg.paths.get(name), "text_dir": data_cfg.text_dir}


def _print_table(title: str, rows: List[Tuple[str, str, object, object, object]]) -> None:
    if os.environ.get("RANK", "0") != "0":
        return
    lines = [title, f"  {'source':<10} {'role':<9} {'samples':>9} {'repeat':>6} {'total':>9}"]
    lines += [f"  {s:<10} {role:<9} {n!s:>9} {r!s:>6} {t!s:>9}" for s, role, n, r, t in rows]
    print("\n".join(lines), flush=True)


def build_pretrain_set(data_cfg: DataConfig, stage: int, kind: str, image_size: int, vision_size: int) -> Dataset:
    """The mixed pre-training set of one kind (``image | video | cross_image | cross_video``), spec 3.4 / 4.5.

    Image/video: the enabled sources (``data_cfg.repeats[name] > 0``) concatenated, each ``repeats`` times (the
    stage-2 config uses TAG x2 and Octopi x3, as the original). SSVTP has images only and is left out of video kinds.
    Cross kinds: anchors from TacQuad (which must be enabled), negatives from every enabled source, each once
    (the original's cross sets do not duplicate). Prints a per-source count table on rank 0. The result has a
    ``counts`` attribute ``{source: (samples, repeat)}`` and is wrapped for ``data_cfg.on_error == "skip"``.
    """
    if kind not in ("image", "video") + CROSS_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected image, video, cross_image or cross_video")
    unknown = sorted(set(data_cfg.repeats) - set(PRETRAIN_SOURCES))
    if unknown:
        raise ValueError(f"data.repeats has unknown source(s) {unknown}; expected keys among {PRETRAIN_SOURCES}")
    bad_paths = sorted(set(data_cfg.paths) - set(DATASETS))
    if bad_paths:
        raise ValueError(f"data.paths has unknown dataset(s) {bad_paths}; expected keys among {sorted(DATASETS)}")
    common = dict(stage=stage, clip=kind, image_size=image_size, vision_size=vision_size, train=True)
    enabled = [(s, int(data_cfg.repeats.get(s, 0))) for s in PRETRAIN_SOURCES if int(data_cfg.repeats.get(s, 0)) > 0]
    rows, parts, counts = [], [], {}
    for name, rep in enabled:
        if name in IMAGE_ONLY_SOURCES and kind in ("video", "cross_video"):
            rows.append((name, "-", "-", rep, "images only"))
            continue
        extra = dict(pairs=False) if name == "tacquad" else {}
        ds = build_dataset(name, root=data_cfg.root, **common, **extra, **_source_options(data_cfg, name))
        counts[name] = (len(ds), rep)
        parts.append((name, ds, rep))
    if kind in CROSS_KINDS:
        anchors = next((ds for name, ds, _ in parts if name == "tacquad"), None)
        if anchors is None:
            raise ValueError("cross kinds need TacQuad (anchors); data.repeats.tacquad is 0")
        result = CrossSensorDataset(anchors, [ds for name, ds, _ in parts if name != "tacquad"])
        for name, ds, _ in parts:
            role = "anchor" if name == "tacquad" else "negative"
            rows.append((name, role, len(ds), 1, len(result) if name == "tacquad" else len(ds)))
        title = (f"pre-training set: stage {stage}, {kind}: {len(result)} anchors "
                 f"({result.excluded_objects} single-sensor TacQuad objects excluded)")
    else:
        if not parts:
            raise ValueError(f"no source enabled for {kind}; data.repeats = {dict(data_cfg.repeats)}")
        result = ConcatDataset([ds for _, ds, rep in parts for _ in range(rep)])
        rows += [(name, "sample", len(ds), rep, len(ds) * rep) for name, ds, rep in parts]
        title = f"pre-training set: stage {stage}, {kind}: {len(result)} samples"
    _print_table(title, sorted(rows, key=lambda r: PRETRAIN_SOURCES.index(r[0])))
    result.counts = counts
    return SkipErrors(result) if data_cfg.on_error == "skip" else result
