"""Per-epoch interleaving of several loaders (docs/original/recipe.md#stage-2-batch-interleaving,
#stage-1-batch-interleaving), identical on every rank and resumable.

Each epoch is a uniformly random interleaving of all batches of all loaders: a permutation of 0..ΣN_i−1 where each
value maps to the loader owning that slot, so every loader is consumed exactly once per epoch (``drop_last``).
The original drew the permutation from the global RNG seeded with seed+rank, so ranks ran different batch types at
the same step (docs/original/defects.md#24-per-rank-batch-schedule); here it comes from a generator seeded by (seed,
epoch): identical on every rank, and the same after a resume.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

from .data import ShardSampler
from .rng import generator

__all__ = ["interleave_order", "Interleaved"]


def interleave_order(num_batches: Sequence[int], seed: int, epoch: int) -> List[int]:
    """The loader index of every step of ``epoch``: a random permutation of the concatenated batch slots.

    Returns a list of length ``sum(num_batches)`` in which loader ``i`` appears exactly ``num_batches[i]`` times.
    """
    total = sum(num_batches)
    perm = torch.randperm(total, generator=generator(seed, "interleave", epoch))
    bounds = torch.cumsum(torch.tensor(list(num_batches)), 0)  # slot s belongs to the first loader with s < bound
    return torch.bucketize(perm, bounds, right=True).tolist()


class Interleaved:
    """Several named DataLoaders (built by :func:`~anytouch.engine.data.build_loader`) consumed as one stream.

    ``epoch(e, start)`` yields ``(step_in_epoch, name, batch)`` for steps ``start..steps_per_epoch-1``; when
    ``start > 0`` each loader first skips the batches the first ``start`` steps took from it.
    """

    def __init__(self, loaders: Dict[str, DataLoader], seed: int):
        for name, loader in loaders.items():
            if not isinstance(loader.sampler, ShardSampler):
                raise TypeError(f"loader {name!r} must use a ShardSampler (see anytouch.engine.data.build_loader)")
        self.loaders, self.seed = dict(loaders), seed
        self.names = list(loaders)
        self.num_batches = [loaders[n].sampler.num_samples // loaders[n].batch_size for n in self.names]
        self.steps_per_epoch = sum(self.num_batches)

    def order(self, epoch: int) -> List[str]:
        """Loader name of every step of ``epoch``."""
        return [self.names[i] for i in interleave_order(self.num_batches, self.seed, epoch)]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Tuple[int, str, Any]]:
        if not 0 <= start <= self.steps_per_epoch:
            raise ValueError(f"start step {start} outside epoch of {self.steps_per_epoch} steps")
        order = self.order(epoch)
        iters = {}
        for name, loader in self.loaders.items():
            consumed = order[:start].count(name)
            loader.sampler.set_epoch(epoch, skip=consumed * loader.batch_size)
            iters[name] = iter(loader)
        for step in range(start, self.steps_per_epoch):
            name = order[step]
            yield step, name, next(iters[name])
