"""Reproducible randomness for training: seeds derived from named parts, and RNG state capture for checkpoints.

Every random draw of the training loop (batch order, sample shuffling, augmentation, MAE masks, the universal-sensor
replacement) comes from a generator seeded by a pure function of (run seed, purpose, epoch, step, rank, ...), so a run
resumed from any checkpoint draws exactly what the uninterrupted run would have drawn, on any number of workers.
"""
from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterator

import numpy as np
import torch

__all__ = ["derive_seed", "generator", "seed_all", "seeded", "rng_state", "set_rng_state"]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed that is a stable function of ``parts`` (ints and strings), e.g. ``(seed, "mask", rank, step)``.

    Stable across processes and Python versions (unlike ``hash``), and well mixed: nearby parts give unrelated seeds.
    """
    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(*parts: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``parts``."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and python ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch / numpy / python RNGs seeded with ``seed``; the previous states are restored after.

    Used around ``dataset[index]`` so that augmentation (torchvision draws from torch's global RNG) is a function of
    the sample, not of which worker or process happens to load it.
    """
    state = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    seed_all(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


def rng_state() -> Dict[str, Any]:
    """This process's RNG states as tensors and plain lists (loadable with ``torch.load(weights_only=True)``)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`. CUDA states are restored only when the device count matches."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
