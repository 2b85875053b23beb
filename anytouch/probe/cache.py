"""On-disk cache of probe features, keyed by everything that determines them.

The key is a SHA-256 over a canonical JSON of:

* the checkpoint's identity: resolved path, size, modification time and a hash of its first and last MiB (every
  file of a checkpoint folder), or ``random:<preset>`` plus the seed;
* the encoder actually loaded: its architecture and a hash of every weight (so ``probe.arch`` overrides and a
  checkpoint rewritten in place are both caught);
* the dataset's identity: name, split, root, validation carve (fraction, seed), the hash of its file list with labels
  (``items`` of the real probe sets) and of every file's size and modification time, or of its sample indices and
  generator settings (synthetic sets), its transform, and the hash of sample 0 drawn under a fixed seed (which also
  catches changed decoding or rendering code);
* the feature recipe: image size, pooling, sensor id, frames per sample, number of augmented views and their seed,
  autocast dtype.

Any change gives another key, hence a fresh extraction; an unchanged input reuses the file. Files are
``<cache dir>/<dataset>-<split>-<key[:20]>.safetensors`` holding ``features`` (V, N, F) and ``labels`` (N,), with
the key and its parts (JSON) in the header. The cache folder is ``probe.cache_dir``, else ``$ANYTOUCH_CACHE_DIR``,
else ``~/.cache/anytouch/probe_features``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch.utils.data import Dataset

from ..checkpoint.io import read_safetensors, safetensors_metadata, save_safetensors
from ..config import to_dict
from ..data.device_aug import stack_touch
from ..engine.rng import seeded

__all__ = ["CACHE_VERSION", "default_cache_dir", "file_identity", "checkpoint_identity", "encoder_identity",
           "dataset_identity", "cache_key", "FeatureCache"]

CACHE_VERSION = 2  # 2: the encoder's weights and every data file's size and mtime are part of the key
_MIB = 1 << 20


def default_cache_dir() -> Path:
    env = os.environ.get("ANYTOUCH_CACHE_DIR")
    return Path(env) / "probe_features" if env else Path.home() / ".cache" / "anytouch" / "probe_features"


def _sha(data: Union[bytes, str]) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def file_identity(path: Union[str, Path]) -> Dict[str, Any]:
    """Resolved path, size, mtime (ns) and SHA-256 of the first and last MiB of a file."""
    p = Path(path).resolve()
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as f:
        h.update(f.read(_MIB))
        if st.st_size > 2 * _MIB:
            f.seek(-_MIB, os.SEEK_END)
            h.update(f.read(_MIB))
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_tail_sha256": h.hexdigest()}


def checkpoint_identity(spec: str, seed: int) -> Dict[str, Any]:
    """Identity of ``probe.checkpoint``: ``random:<preset>`` (with the init seed), a file, or a folder of files."""
    if spec.startswith("random:"):
        return {"spec": spec, "seed": seed}
    p = Path(spec)
    if p.is_dir():
        return {"spec": spec, "files": [file_identity(f) for f in sorted(p.iterdir()) if f.is_file()]}
    if not p.is_file():
        raise FileNotFoundError(f"probe.checkpoint={spec!r}: no such file or folder")
    return {"spec": spec, **file_identity(p)}


def encoder_identity(encoder: torch.nn.Module) -> Dict[str, Any]:
    """The loaded encoder: its architecture (``arch``, when it has one) and a SHA-256 over every state-dict entry's
    name, dtype, shape and bytes. About a second for ViT-L/14, small beside extracting features."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    arch = getattr(encoder, "arch", None)
    return {"arch": arch.to_dict() if arch is not None else None, "weights_sha256": h.hexdigest()}


def _files_stat_sha(items) -> str:
    """Hash of (path, size, mtime_ns) of every file of a probe set: an edited or replaced image changes it."""
    h = hashlib.sha256()
    for paths, _ in items:
        for f in paths:
            st = os.stat(f)
            h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def dataset_identity(dataset: Dataset) -> Dict[str, Any]:
    """What a probe set's samples are made of (see the module docstring). Raises TypeError for a dataset that
    exposes neither a file list (``items``) nor synthetic indices (``indices`` + ``cfg``)."""
    out: Dict[str, Any] = {"type": type(dataset).__name__, "len": len(dataset)}
    items = getattr(dataset, "items", None)
    if items is not None:
        out["files_sha256"] = _sha(repr([(tuple(paths), label) for paths, label in items]))
        out["files_stat_sha256"] = _files_stat_sha(items)
    elif getattr(dataset, "indices", None) is not None and getattr(dataset, "cfg", None) is not None:
        out["synthetic_sha256"] = _sha(repr((list(dataset.indices), to_dict(dataset.cfg))))
    else:
        raise TypeError(f"cannot fingerprint a {type(dataset).__name__} for the feature cache: it has neither a file "
                        "list ('items') nor synthetic 'indices' and 'cfg'; run with probe.protocol=official")
    out["transform"] = repr(getattr(dataset, "transform", None))
    with seeded(0):
        touch = stack_touch([dataset[0]])[0]  # the model input: worker side and device side
    out["sample0_sha256"] = _sha(touch.contiguous().numpy().tobytes())
    return out


def cache_key(parts: Dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (sorted keys)."""
    return _sha(json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str))


class FeatureCache:
    """Feature files in ``root`` (created on first save)."""

    def __init__(self, root: Union[str, Path, None] = None):
        self.root = Path(root) if root else default_cache_dir()

    def path(self, key: str, label: str) -> Path:
        return self.root / f"{label}-{key[:20]}.safetensors"

    def load(self, key: str, label: str) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """(features, labels) stored under ``key``, or None if absent."""
        p = self.path(key, label)
        if not p.is_file() or safetensors_metadata(p).get("key") != key:
            return None
        t = read_safetensors(p)
        return t["features"], t["labels"]

    def save(self, key: str, label: str, features: torch.Tensor, labels: torch.Tensor, parts: Dict[str, Any]) -> Path:
        meta = {"key": key, "parts": json.dumps(parts, sort_keys=True, default=str)}
        return save_safetensors({"features": features, "labels": labels}, self.path(key, label), meta)
