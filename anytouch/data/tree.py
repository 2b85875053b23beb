"""``TreeWriter``: the file writer behind :func:`anytouch.data.synthetic_tree.write_synthetic_tree`.

Each dataset's spec names a tree writer (``DatasetSpec.tree``) that calls it to write a small synthetic copy of the
dataset in its original on-disk layout. Frames come from :mod:`anytouch.data.synthetic_render`; text files are
``(input_ids, attention_mask)`` pairs of an attribute caption, saved like the original's pre-tokenised ``.pt`` files.
"""
from __future__ import annotations

import json
import os
import pickle
import zlib
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .synthetic_render import LOOKS, caption, random_scene, render_touch
from .text import encode_text

__all__ = ["TreeWriter"]


class TreeWriter:
    """Writes the files of a synthetic tree under ``root``: frames (``image``), caption ``.pt`` files (``text``),
    comma-separated index files (``lines``), JSON files (``json``), pickles (``pickle``); ``rng(*keys)`` is the
    seeded generator of one recording."""

    def __init__(self, root: str, seed: int, size: int, sequences: int, frames: int):
        self.root, self.seed, self.size, self.sequences, self.frames = root, seed, size, sequences, frames
        self.count = 0

    def rng(self, *keys) -> np.random.Generator:
        return np.random.default_rng([self.seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys])

    def image(self, rel: str, chw: np.ndarray) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).save(path, quality=95)
        self.count += 1

    def text(self, rel: str, material, variant: int) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(encode_text(caption(material, variant)), path)

    def lines(self, rel: str, rows: Sequence[Sequence]) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(",".join(str(c) for c in r) + "\n" for r in rows)

    def json(self, rel: str, obj) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f)
        self.count += 1

    def pickle(self, rel: str, obj) -> None:
        """A pickle file (numpy arrays and plain containers, as the Sparsh releases ship their frames and labels)."""
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(obj, f)
        self.count += 1

    def sequence(self, rng, sensor: int, material, n: Optional[int] = None):
        """(scene, uint8 (n,3,R,R) frames pressing in): the first frame barely touches."""
        n = n or self.frames
        scene = random_scene(rng, material)
        return scene, render_touch(scene, LOOKS[sensor], self.size, rng, list(np.linspace(0.1, 1.0, n)))
