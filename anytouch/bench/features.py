"""Frozen-encoder features for the benchmark: encoded on the fly ("live") or once per split and cached on disk.

A bench dataset yields raw samples (``frames`` uint8 (T, H, W, 3) oldest first, ``background``, ``has_background``,
``sensor``, ``target``, ``group``); :func:`encode_dataset` cuts each encoder's window out of the frames
(:func:`~anytouch.bench.encoders.select_window`), runs the plug-in and returns :class:`Features`.

The cache key is a SHA-256 (:func:`anytouch.probe.cache.cache_key`) over the encoder's identity (its YAML spec, the
checkpoint files' size/mtime/head-tail hash, a hash of every loaded weight, its input contract), the data's identity
(task definition, split, root, synthetic flag and seed, length, the label list and file list with sizes and mtimes
when the dataset exposes them, and a hash of sample 0), the feature dtype and the window rule. Files are
``<cache>/<encoder>-<task>-<split>-<key[:20]>.safetensors`` with ``tokens``, ``pooled``, ``target`` and the groups
(JSON) and key in the header.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint.io import read_safetensors, safetensors_metadata, save_safetensors
from ..probe.cache import cache_key, encoder_identity, file_identity
from .encoders import TactileEncoderPlugin, select_window

__all__ = ["Features", "collate", "encode_batch", "encode_dataset", "feature_key", "FeatureStore", "dtype_of"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Features:
    """Encoded split: ``tokens`` (N, L, D), ``pooled`` (N, P), ``target`` (N,) long or (N, K) float, ``groups``."""

    tokens: torch.Tensor
    pooled: torch.Tensor
    target: torch.Tensor
    groups: List[str]

    def __len__(self) -> int:
        return self.pooled.shape[0]


def collate(samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack raw bench samples (equal frame shapes within a task) into a batch."""
    return {"frames": torch.stack([s["frames"] for s in samples]),
            "background": torch.stack([s["background"] for s in samples]),
            "has_background": torch.tensor([bool(s.get("has_background", True)) for s in samples]),
            "sensor": [s["sensor"] for s in samples],
            "target": torch.stack([torch.as_tensor(s["target"]) for s in samples]),
            "group": [str(s.get("group", s.get("source", ""))) for s in samples]}


def encode_batch(plugin: TactileEncoderPlugin, batch: Dict[str, Any], source_stride: int,
                 dtype: torch.dtype = torch.float32, views: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Encode a collated batch: the encoder's window is cut from the frames, samples with and without background
    go through separate calls. Returns (tokens (B, L, D), pooled (B, P)) on the CPU in ``dtype``.

    ``views`` > 1: the T = ``views`` frames of a sample are separate sensors at one instant (Feel's fingers A and
    B), not time. Each is encoded alone as a single image (repeated to the encoder's window, as any still image
    is), with the sample's background and sensor; the result is (B, views·L, D) tokens and (B, views·P) pooled
    features, view A first.
    """
    if views > 1:
        frames = batch["frames"]
        b, t = frames.shape[:2]
        if t != views:
            raise ValueError(f"a sample of {views} views must hold {views} frames, got {t}")
        flat = {"frames": frames.reshape(b * t, 1, *frames.shape[2:]),
                "background": batch["background"].repeat_interleave(t, dim=0),
                "has_background": batch["has_background"].repeat_interleave(t),
                "sensor": [s for s in batch["sensor"] for _ in range(t)]}
        tokens, pooled = encode_batch(plugin, flat, source_stride, dtype)
        return tokens.reshape(b, t * tokens.shape[1], tokens.shape[2]), pooled.reshape(b, t * pooled.shape[1])
    c = plugin.contract
    frames = select_window(batch["frames"], source_stride, c.frames, c.stride)
    has_bg = batch["has_background"]
    tokens = pooled = None
    for flag in (True, False):
        rows = torch.nonzero(has_bg == flag).flatten()
        if not len(rows):
            continue
        bg = batch["background"][rows] if flag else None
        t, p = plugin.encode(frames[rows], bg, [batch["sensor"][i] for i in rows.tolist()])
        if tokens is None:
            tokens = t.new_zeros(len(has_bg), *t.shape[1:])
            pooled = p.new_zeros(len(has_bg), *p.shape[1:])
        tokens[rows.to(t.device)], pooled[rows.to(p.device)] = t, p
    return tokens.to("cpu", dtype), pooled.to("cpu", dtype)


def encode_dataset(plugin: TactileEncoderPlugin, dataset: Dataset, source_stride: int, batch_size: int = 64,
                   num_workers: int = 0, dtype: torch.dtype = torch.float32, views: int = 1) -> Features:
    """Every sample of ``dataset`` through ``plugin`` (in order); ``views`` as in :func:`encode_batch`."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    toks, pools, targets, groups = [], [], [], []
    for batch in loader:
        t, p = encode_batch(plugin, batch, source_stride, dtype, views)
        toks.append(t)
        pools.append(p)
        targets.append(batch["target"])
        groups += batch["group"]
    if not toks:
        raise ValueError(f"{type(dataset).__name__} is empty: nothing to encode")
    return Features(torch.cat(toks), torch.cat(pools), torch.cat(targets), groups)


def _stat_sha(files: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _checkpoint_identity(path: Optional[str]) -> Any:
    if not path:
        return None
    p = Path(path)
    if p.is_dir():
        return [file_identity(f) for f in sorted(p.rglob("*")) if f.is_file()]
    return file_identity(p)


def feature_key(plugin: TactileEncoderPlugin, spec: Dict[str, Any], task: Any, split: str, dataset: Dataset,
                data: Dict[str, Any], dtype: str) -> Tuple[str, Dict[str, Any]]:
    """(key, parts) identifying the features of ``dataset`` under ``plugin`` (see the module docstring).
    ``data`` holds how the dataset was built (root, synthetic, seed)."""
    ident: Dict[str, Any] = {"len": len(dataset), "type": type(dataset).__name__}
    labels = dataset.labels() if hasattr(dataset, "labels") else None
    if labels is not None:
        ident["labels_sha256"] = hashlib.sha256(repr([int(v) for v in labels]).encode()).hexdigest()
    files = dataset.files() if hasattr(dataset, "files") else None
    if files:
        ident["files_stat_sha256"] = _stat_sha(files)
    s0 = dataset[0]
    h = hashlib.sha256(s0["frames"].contiguous().numpy().tobytes())
    h.update(s0["background"].contiguous().numpy().tobytes())
    h.update(torch.as_tensor(s0["target"]).contiguous().numpy().tobytes())
    ident["sample0_sha256"] = h.hexdigest()
    task_dict = dataclasses.asdict(task) if dataclasses.is_dataclass(task) else dict(vars(task))
    parts = {"encoder": {"spec": spec, "checkpoint": _checkpoint_identity(spec.get("checkpoint")),
                         "weights": encoder_identity(plugin)["weights_sha256"],
                         "contract": plugin.contract.to_dict()},
             "data": {"task": task_dict, "split": split, **data, **ident},
             "dtype": dtype, "window": "nearest-offset v2 (views encoded alone)"}
    return cache_key(parts), parts


class FeatureStore:
    """Cached :class:`Features` in ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str, label: str) -> Path:
        return self.root / f"{label}-{key[:20]}.safetensors"

    def load(self, key: str, label: str) -> Optional[Features]:
        p = self.path(key, label)
        if not p.is_file():
            return None
        meta = safetensors_metadata(p)
        if meta.get("key") != key:
            return None
        t = read_safetensors(p)
        return Features(t["tokens"], t["pooled"], t["target"], json.loads(meta["groups"]))

    def save(self, key: str, label: str, feats: Features, parts: Dict[str, Any]) -> Path:
        meta = {"key": key, "groups": json.dumps(feats.groups),
                "parts": json.dumps(parts, sort_keys=True, default=str)}
        return save_safetensors({"tokens": feats.tokens, "pooled": feats.pooled, "target": feats.target},
                                self.path(key, label), meta)


def dtype_of(name: str) -> torch.dtype:
    """``"float32"`` / ``"float16"`` / ``"bfloat16"`` -> the torch dtype features are stored in."""
    if name not in _DTYPES:
        raise ValueError(f"feature dtype {name!r}; expected one of {', '.join(_DTYPES)}")
    return _DTYPES[name]
