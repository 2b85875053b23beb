"""Frozen-encoder features for the probes: one batch (:func:`encode`) or a whole dataset (:func:`extract_features`).

Feel samples are (B, 2, 3, H, W) pairs: each frame goes through the encoder as an image with the same sensor id and
the head sees the concatenation [f(A), f(B)] (the original's cls path; its "global" path for pairs mixed up the
axes, docs/original/defects.md#9-feel-global-pooling-mixes-axes, which this layout avoids).

Extraction view ``v`` of sample ``i`` is drawn exactly as the official loop's epoch ``v`` draws it
(:class:`~anytouch.engine.data.EpochSeeded` with key (v, i) and the same seed), so with as many views as epochs the
cached protocol sees the very tensors the official one sees.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.device_aug import touch_on_device
from ..engine.data import EpochSeeded
from ..engine.dist import DistEnv, gather_to_main
from ..progress import progress
from .tasks import Task

__all__ = ["encode", "extract_features", "shard"]


def encode(encoder, touch: torch.Tensor, sensor: int, pooling: str, frames: int = 1) -> torch.Tensor:
    """Probe features of one batch.

    Args:
        encoder: a :class:`~anytouch.models.TouchEncoder`.
        touch: (B, 3, H, W) images, or (B, frames, 3, H, W) when ``frames > 1`` (Feel: A then B).
        sensor: sensor id for every sample (-1 = universal token).
        pooling: ``cls`` or ``global`` (see ``TouchEncoder.pool``).
        frames: frames per sample.
    Returns:
        (B, frames * P) features, frame by frame.
    """
    if frames == 1:
        return encoder(touch, sensor, pooling)
    if touch.ndim != 5 or touch.shape[1] != frames:
        raise ValueError(f"expected a (B, {frames}, 3, H, W) batch of {frames}-frame samples, got {tuple(touch.shape)}")
    b = touch.shape[0]
    feats = encoder(touch.flatten(0, 1), sensor, pooling)  # (B*frames, P): sample 0 frame A, sample 0 frame B, ...
    return feats.view(b, frames * feats.shape[-1])  # (B, frames*P) = [f(A), f(B)]


def shard(n: int, env: DistEnv) -> range:
    """This rank's samples of an n-sample evaluation set: ``rank, rank + W, ...``. Unlike ``DistributedSampler``
    nothing is padded, so no sample is counted twice (the original's test sets were padded to a multiple of W)."""
    return range(env.rank, n, env.world_size)


class _Keys(Sampler):
    def __init__(self, keys):
        self.keys = keys

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


@torch.inference_mode()
def extract_features(encoder, dataset: Dataset, task: Task, *, pooling: str, sensor: int, views: int, seed: int,
                     batch_size: int, env: DistEnv, dtype: torch.dtype, num_workers: int = 0,
                     desc: str = "features") -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Run the frozen encoder over ``dataset`` ``views`` times.

    Args:
        dataset: a probe set (sample dicts with ``touch`` and ``label``).
        views: augmented views per sample (use 1 for a set without augmentation).
        seed: the sample seed of :class:`EpochSeeded` (the official loop's loader seed).
        batch_size: per process.
        dtype: autocast dtype (bf16 / fp16 on GPU; fp32 = no autocast).
    Returns:
        on rank 0: (features (views, N, F) in the encoder's output dtype, on CPU; labels (N,) int64); None elsewhere.
        Every rank encodes its :func:`shard`.
    """
    n = len(dataset)
    if n < env.world_size:
        raise ValueError(f"{desc}: a dataset of {n} samples cannot be spread over {env.world_size} processes")
    mine = list(shard(n, env))
    keys = [(v, i) for v in range(views) for i in mine]
    loader = DataLoader(EpochSeeded(dataset, seed), batch_size=batch_size, sampler=_Keys(keys), num_workers=num_workers,
                        pin_memory=env.device.type == "cuda")
    bar = None
    if env.is_main:
        bar = progress(total=len(keys) * env.world_size, desc=desc, unit="img", leave=False)
    feats, labels = [], []
    autocast = torch.autocast(env.device.type, dtype=dtype, enabled=dtype != torch.float32)
    for batch in loader:
        touch = touch_on_device(batch["touch"], batch["touch_aug"], env.device)
        with autocast:
            feats.append(encode(encoder, touch, sensor, pooling, task.frames).cpu())
        labels.append(batch["label"])
        if bar is not None:
            bar.update(touch.shape[0] * env.world_size)
    if bar is not None:
        bar.close()
    f = torch.cat(feats).view(views, len(mine), -1)  # (V, N_rank, F)
    y = torch.cat(labels).view(views, len(mine))[0].long()
    parts = gather_to_main((mine, f, y))
    if parts is None:
        return None
    dim = parts[0][1].shape[-1]
    out_f = torch.empty(views, n, dim, dtype=parts[0][1].dtype)
    out_y = torch.empty(n, dtype=torch.long)
    for idx, pf, py in parts:
        out_f[:, idx] = pf
        out_y[idx] = py
    return out_f, out_y
