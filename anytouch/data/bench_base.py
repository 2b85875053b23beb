"""Raw samples of the benchmark task sets (``DatasetSpec.kind == "bench"``) and what their loaders share.

A bench sample is un-normalised, so that each encoder applies its own input contract (``anytouch.bench.tasks``
documents it for the benchmark)::

    {"frames": uint8 (T, H, W, 3), oldest first, "background": uint8 (H, W, 3) (all zero when
     "has_background" is False), "has_background": bool, "sensor": str, "target": long scalar or float (K,),
     "source": str, "group": str (the unit a split or a per-group metric goes by: trajectory, bag, garment)}

Every bench dataset also answers ``labels()`` (class labels without decoding frames, None for regression: the
budget subsets are stratified on them) and ``files()`` (the files it reads, for ``verify``).
"""
from __future__ import annotations

import io
import zlib
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .io import DataError

__all__ = ["bench_sample", "decode_frame", "encode_png", "window", "check_split", "SyntheticBench", "IndexedBench"]

SPLITS = ("train", "val", "test")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split {split!r}; expected one of {SPLITS}")


def bench_sample(frames: np.ndarray, background: Optional[np.ndarray], sensor: str, target, source: str,
                 group: str) -> dict:
    """The sample dict from uint8 frames (T, H, W, 3), a background (H, W, 3) or None, and the target (an int:
    a long scalar; a sequence of floats: a float32 vector in SI units)."""
    frames = torch.from_numpy(np.array(frames, dtype=np.uint8))
    has_bg = background is not None
    bg = torch.from_numpy(np.array(background, dtype=np.uint8)) if has_bg else \
        torch.zeros(frames.shape[1:], dtype=torch.uint8)
    if isinstance(target, (int, np.integer)):
        target = torch.tensor(int(target), dtype=torch.long)
    else:
        target = torch.as_tensor(np.asarray(target, dtype=np.float32))
    return {"frames": frames, "background": bg, "has_background": has_bg, "sensor": sensor, "target": target,
            "source": source, "group": group}


def decode_frame(obj, where: str) -> np.ndarray:
    """One frame as a release stores it (encoded image bytes, or a uint8 (H, W, 3) array) -> uint8 (H, W, 3) RGB
    as decoded (no channel swap); DataError naming ``where`` otherwise."""
    if isinstance(obj, (bytes, bytearray, np.bytes_)):
        try:
            with Image.open(io.BytesIO(bytes(obj))) as im:
                return np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{where}: frame bytes do not decode as an image: {e}") from e
    if isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 3 and obj.shape[2] == 3:
        return obj
    desc = f"array {obj.dtype} {obj.shape}" if isinstance(obj, np.ndarray) else type(obj).__name__
    raise DataError(f"{where}: frame is a {desc}; expected encoded image bytes or a uint8 (H, W, 3) array")


def encode_png(hwc: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes (how the synthetic fixture trees store frames inside pickles)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(hwc)).save(buf, format="PNG")
    return buf.getvalue()


def window(end: int, frames: int, stride: int) -> List[int]:
    """Positions of a ``frames``-frame window at ``stride`` ending at ``end``, oldest first."""
    if frames < 1 or stride < 1:
        raise ValueError(f"frames={frames}, stride={stride}; expected both >= 1")
    return [end - (frames - 1 - k) * stride for k in range(frames)]


class IndexedBench(Dataset):
    """A real bench set: ``entries`` (one per sample) and ``load(entry) -> sample``; ``label_of(entry)`` gives the
    class label (None: a regression set) and ``paths`` the files it reads."""

    def __init__(self, entries: Sequence, load: Callable[[object], dict], label_of: Optional[Callable] = None,
                 paths: Sequence[str] = ()):
        self.entries, self._load, self._label_of, self._paths = list(entries), load, label_of, sorted(set(paths))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        return self._load(self.entries[i])

    def labels(self) -> Optional[List[int]]:
        return None if self._label_of is None else [int(self._label_of(e)) for e in self.entries]

    def files(self) -> List[str]:
        return list(self._paths)


class SyntheticBench(Dataset):
    """A synthetic bench twin: sample ``i`` of ``split`` is ``render(rng, label)`` with the generator seeded by
    ``(seed, key, split, i)``; ``draw_label(rng)`` is the first draw from that generator (so ``labels()`` costs no
    rendering); None: a regression twin."""

    def __init__(self, key: str, split: str, num_samples: int, seed: int, render: Callable,
                 draw_label: Optional[Callable] = None):
        check_split(split)
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples}; expected >= 1")
        self.key, self.split, self.n, self.seed = key, split, int(num_samples), int(seed)
        self._render, self._draw_label = render, draw_label

    def __len__(self) -> int:
        return self.n

    def _rng(self, i: int) -> np.random.Generator:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a synthetic set of {self.n} samples")
        keys = [self.seed, zlib.crc32(self.key.encode()), zlib.crc32(self.split.encode()), i]
        return np.random.default_rng(keys)

    def __getitem__(self, i: int) -> dict:
        rng = self._rng(i)
        label = self._draw_label(rng) if self._draw_label else None
        return self._render(rng, label, f"{self.split}{i}")

    def labels(self) -> Optional[List[int]]:
        return None if self._draw_label is None else [int(self._draw_label(self._rng(i))) for i in range(self.n)]

    def files(self) -> List[str]:
        return []
