"""Resumable, reproducible data loading for distributed training.

* :class:`ShardSampler` shuffles with a generator seeded by (seed, epoch) -- the same permutation on every rank --
  takes this rank's shard, and can start part-way through an epoch (mid-epoch resume skips the consumed samples
  without drawing anything differently).
* :class:`EpochSeeded` loads sample ``index`` of epoch ``epoch`` with the global RNGs seeded from
  (seed, epoch, index), so augmentation does not depend on which worker loads it or on where the run was resumed.
  The sampler yields ``(epoch, index)`` keys for it, which also works with persistent workers.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Optional, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .dist import DistEnv
from .rng import derive_seed, generator, seeded

__all__ = ["ShardSampler", "EpochSeeded", "build_loader", "cpus_per_process", "default_workers", "resolve_workers",
           "default_prefetch"]

_BATCHES_IN_FLIGHT = 8  # per loader: enough to hide a slow sample (a large JPEG, a cold page) behind the others


class ShardSampler(Sampler[Tuple[int, int]]):
    """Per-rank shard of a dataset, reshuffled every epoch as a pure function of (seed, epoch).

    Every rank gets ``len(dataset) // world_size`` samples (the tail is dropped so ranks run equal step counts).
    Yields ``(epoch, index)``.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        if size < world_size:
            raise ValueError(f"a dataset of {size} samples cannot be sharded over {world_size} ranks")
        self.size, self.seed, self.rank, self.world_size, self.shuffle = size, seed, rank, world_size, shuffle
        self.num_samples = size // world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of this rank's samples to skip (already consumed before a resume)."""
        if not 0 <= skip <= self.num_samples:
            raise ValueError(f"cannot skip {skip} of {self.num_samples} samples")
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=generator(self.seed, "shuffle", self.epoch))
        else:
            order = torch.arange(self.size)
        mine = order[self.rank: self.num_samples * self.world_size: self.world_size]  # rank-strided shard
        for i in mine[self.skip:].tolist():
            yield self.epoch, i

    def __len__(self) -> int:
        return self.num_samples - self.skip


class EpochSeeded(Dataset):
    """Wraps a map-style dataset; ``self[(epoch, index)]`` is ``dataset[index]`` drawn under
    :func:`~anytouch.engine.rng.seeded` with seed derived from (seed, epoch, index).

    A dataset with ``set_epoch`` (the cross-sensor sampler) is told the epoch here, in whichever process loads the
    sample, so that persistent DataLoader workers see it too."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        self._set_epoch = getattr(dataset, "set_epoch", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        epoch, index = key
        if self._set_epoch is not None:
            self._set_epoch(epoch)
        with seeded(derive_seed(self.seed, "sample", epoch, index)):
            return self.dataset[index]


def cpus_per_process() -> int:
    """The CPUs this process may use: its affinity set shared with the other processes of this node (torchrun's
    ``LOCAL_WORLD_SIZE``)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def default_workers(loaders: int = 1) -> int:
    """Workers per loader when ``data.num_workers`` is unset: this process's CPUs minus one (the training loop)
    shared by its ``loaders`` (all persistent); 0 (load in the main process) with a single CPU."""
    cpus = cpus_per_process()
    return 0 if cpus <= 1 else max(1, (cpus - 1) // max(1, loaders))


def resolve_workers(num_workers: Optional[int], loaders: int = 1) -> int:
    """``data.num_workers`` as an int: the configured value, or :func:`default_workers` when it is None."""
    return default_workers(loaders) if num_workers is None else int(num_workers)


def default_prefetch(num_workers: int) -> Optional[int]:
    """Batches each worker prefetches when ``data.prefetch_factor`` is unset: about 8 batches in flight per loader
    (at least 2 per worker); None without workers (DataLoader's requirement)."""
    return None if num_workers == 0 else max(2, math.ceil(_BATCHES_IN_FLIGHT / num_workers))


def build_loader(dataset: Dataset, batch_size: int, seed: int, env: DistEnv, num_workers: Optional[int] = 0,
                 shuffle: bool = True, prefetch_factor: Optional[int] = None, loaders: int = 1) -> DataLoader:
    """A DataLoader over this rank's shard with ``drop_last=True``; call ``loader.sampler.set_epoch`` each epoch.

    ``seed`` should differ per dataset of a run (derive it from the run seed and the loader name). ``num_workers`` /
    ``prefetch_factor`` None: :func:`default_workers` (``loaders`` = how many loaders share the CPUs) /
    :func:`default_prefetch`. Batches are pinned on CUDA so that the step's ``non_blocking`` copies overlap.
    """
    sampler = ShardSampler(len(dataset), seed, env.rank, env.world_size, shuffle)
    if sampler.num_samples < batch_size:
        raise ValueError(f"a dataset of {len(dataset)} samples gives {sampler.num_samples} per rank on "
                         f"{env.world_size} ranks, fewer than one batch of {batch_size}")
    workers = resolve_workers(num_workers, loaders)
    prefetch = (prefetch_factor or default_prefetch(workers)) if workers > 0 else None
    return DataLoader(
        EpochSeeded(dataset, seed), batch_size=batch_size, sampler=sampler, drop_last=True,
        num_workers=workers, pin_memory=env.device.type == "cuda", persistent_workers=workers > 0,
        prefetch_factor=prefetch,
    )
