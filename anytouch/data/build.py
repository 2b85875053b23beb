"""``build_dataset`` / ``build_pretrain_set``: the entry points of docs/design.md ("Data sample contract").

Every name is looked up in :mod:`anytouch.data.registry`; real data is built by the spec's ``build(split=..., root=...,
**options)``, the synthetic twin (``synthetic=True`` or a :class:`~anytouch.data.synthetic.SyntheticConfig`) by
:func:`anytouch.data.synthetic.build_synthetic`.

Options handled here, for every dataset: ``on_error`` ("raise" | "skip", see :mod:`anytouch.data.skip`) and, for the
cross-sensor anchor source (TacQuad) with a cross kind, ``pairs`` (default True: wrap the frames into
anchor/positive/negative triplets, docs/original/recipe.md#stage-2-cross-sensor-matching; False: the raw frame set) and
``cross_seed``. The remaining options go to the builder (pre-training loaders: ``image_size, vision_size, clip, stage,
train, path, text_dir, antialias, jitter``; TacQuad also ``parts``).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple, Union

from torch.utils.data import ConcatDataset, Dataset

from .config import DataConfig
from .cross import CrossSensorDataset
from .packed import PackedDataset
from .registry import get, names
from .skip import SkipErrors
from .spec import BenchTwin
from .synthetic import SyntheticConfig, build_synthetic

__all__ = ["build_dataset", "build_pretrain_set", "CROSS_KINDS"]

CROSS_KINDS = ("cross_image", "cross_video")


def build_dataset(name: str, split: str = "train", root: Optional[str] = None,
                  synthetic: Union[bool, SyntheticConfig] = False, **options) -> Dataset:
    """Build dataset ``name`` (a registered name, see :mod:`anytouch.data.registry`).

    Args:
        root: the data root (default: ``$ANYTOUCH_DATA_ROOT`` or ``tactile_datasets``); unused for synthetic data.
        synthetic: True (or a :class:`SyntheticConfig`) builds the dataset's built-in synthetic twin instead.
    Returns:
        a Dataset of sample dicts (docs/design.md); wrapped in :class:`~anytouch.data.skip.SkipErrors` when
        ``on_error="skip"``.
    """
    if root == "synthetic":
        raise ValueError("root='synthetic' is not a data root: build the synthetic twin with "
                         "build_dataset(name, synthetic=True) (in a config: data.source=synthetic, or data=synthetic)")
    spec = get(name)
    on_error = options.pop("on_error", "raise")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    pairs = options.pop("pairs", True) if spec.cross_anchor else True
    cross_seed = options.pop("cross_seed", 0) if spec.cross_anchor else 0
    if synthetic is not False:
        cfg = synthetic if isinstance(synthetic, SyntheticConfig) else None
        if not (synthetic is True or cfg is not None):
            raise TypeError(f"synthetic={synthetic!r}; expected a bool or a SyntheticConfig")
        if isinstance(spec.synthetic, BenchTwin):
            cfg = cfg or SyntheticConfig()
            options.setdefault("num_samples", cfg.num_samples)
            ds = spec.synthetic.build(split=split, seed=options.pop("seed", cfg.seed), **options)
        else:
            ds = build_synthetic(name, split=split, synthetic=cfg, **options)
    else:
        root = root if root is not None else os.environ.get("ANYTOUCH_DATA_ROOT", "tactile_datasets")
        ds = spec.build(split=split, root=root, **options)
    if spec.cross_anchor and pairs and options.get("clip") in CROSS_KINDS:
        ds = CrossSensorDataset(ds, seed=cross_seed)
    return SkipErrors(ds) if on_error == "skip" else ds


def _source_options(data_cfg: DataConfig, name: str) -> dict:
    if data_cfg.source == "synthetic":
        return {"synthetic": data_cfg.synthetic}
    return {"root": data_cfg.root, "path": data_cfg.paths.get(name), "text_dir": data_cfg.text_dir}


def _packed(data_cfg: DataConfig, name: str, stage: int, kind: str, image_size: int, vision_size: int) -> Dataset:
    """``data.store=packed``: source ``name``'s samples of ``kind`` from ``<packed_dir>/<name>`` (anytouch pack);
    stage-2 image / video samples also read the store's camera images and text."""
    store = os.path.join(data_cfg.packed_dir or os.path.join(data_cfg.root, "packed"), name)
    ds = PackedDataset(store, kind, stage=1 if kind in CROSS_KINDS else stage)
    if ds.size != image_size:
        raise ValueError(f"packed store {store} holds {ds.size}x{ds.size} frames, the model takes {image_size}x"
                         f"{image_size}; re-pack with anytouch pack --size {image_size}")
    if ds.stage2 and ds.vision_size != vision_size:
        raise ValueError(f"packed store {store} holds camera images for {ds.vision_size}x{ds.vision_size}, the model "
                         f"takes {vision_size}x{vision_size}; re-pack with anytouch pack --vision-size {vision_size}")
    return ds


def _print_table(title: str, rows: List[Tuple[str, str, object, object, object]]) -> None:
    if os.environ.get("RANK", "0") != "0":
        return
    lines = [title, f"  {'source':<10} {'role':<9} {'samples':>9} {'repeat':>6} {'total':>9}"]
    lines += [f"  {s:<10} {role:<9} {n!s:>9} {r!s:>6} {t!s:>9}" for s, role, n, r, t in rows]
    print("\n".join(lines), flush=True)


def build_pretrain_set(data_cfg: DataConfig, stage: int, kind: str, image_size: int, vision_size: int) -> Dataset:
    """The mixed pre-training set of one kind (``image | video | cross_image | cross_video``),
    docs/original/recipe.md#stage-2-batch-interleaving, docs/original/data.md#loader-contents.

    Image/video: the enabled sources (``data_cfg.repeats[name] > 0``, in registration order) concatenated, each
    ``repeats`` times (the stage-2 config uses TAG x2 and Octopi x3, as the original). Image-only sources (SSVTP)
    are left out of video kinds. Cross kinds: anchors from the cross-anchor source (TacQuad, which must be enabled),
    negatives from every enabled source, each once (the original's cross sets do not duplicate). Prints a
    per-source count table on rank 0. The result has a ``counts`` attribute ``{source: (samples, repeat)}`` and is
    wrapped for ``data_cfg.on_error == "skip"``. ``data_cfg.store == "packed"`` reads each source from its packed
    store (same samples, frames resized once with antialiasing, stage-2 camera images and text stored with them, see
    :mod:`anytouch.data.packed`).
    """
    if kind not in ("image", "video") + CROSS_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected image, video, cross_image or cross_video")
    sources = names("pretrain")
    unknown = sorted(set(data_cfg.repeats) - set(sources))
    if unknown:
        raise ValueError(f"data.repeats has unknown source(s) {unknown}; expected keys among {sources}")
    bad_paths = sorted(set(data_cfg.paths) - set(names()))
    if bad_paths:
        raise ValueError(f"data.paths has unknown dataset(s) {bad_paths}; expected keys among {sorted(names())}")
    common = dict(stage=stage, clip=kind, image_size=image_size, vision_size=vision_size, train=True)
    enabled = [(s, int(data_cfg.repeats.get(s, 0))) for s in sources if int(data_cfg.repeats.get(s, 0)) > 0]
    rows, parts, counts = [], [], {}
    for name, rep in enabled:
        spec = get(name)
        if not spec.video and kind in ("video", "cross_video"):
            rows.append((name, "-", "-", rep, "images only"))
            continue
        if data_cfg.store == "packed" and data_cfg.source == "files":
            ds = _packed(data_cfg, name, stage, kind, image_size, vision_size)
        else:
            extra = dict(pairs=False) if spec.cross_anchor else {}
            ds = build_dataset(name, **common, **extra, **_source_options(data_cfg, name))
        counts[name] = (len(ds), rep)
        parts.append((name, ds, rep))
    if kind in CROSS_KINDS:
        anchor = next((s.name for s in map(get, sources) if s.cross_anchor), None)
        anchors = next((ds for name, ds, _ in parts if name == anchor), None)
        if anchors is None:
            raise ValueError(f"cross kinds need {anchor} (anchors); data.repeats.{anchor} is 0")
        result = CrossSensorDataset(anchors, [ds for name, ds, _ in parts if name != anchor])
        for name, ds, _ in parts:
            role = "anchor" if name == anchor else "negative"
            rows.append((name, role, len(ds), 1, len(result) if name == anchor else len(ds)))
        title = (f"pre-training set: stage {stage}, {kind}: {len(result)} anchors "
                 f"({result.excluded_objects} single-sensor {anchor} objects excluded)")
    else:
        if not parts:
            raise ValueError(f"no source enabled for {kind}; data.repeats = {dict(data_cfg.repeats)}")
        result = ConcatDataset([ds for _, ds, rep in parts for _ in range(rep)])
        rows += [(name, "sample", len(ds), rep, len(ds) * rep) for name, ds, rep in parts]
        title = f"pre-training set: stage {stage}, {kind}: {len(result)} samples"
    _print_table(title, sorted(rows, key=lambda r: sources.index(r[0])))
    result.counts = counts
    return SkipErrors(result) if data_cfg.on_error == "skip" else result
