"""Per-step schedules as pure functions of the global step (docs/original/recipe.md#optimiser-and-schedule,
docs/original/architecture.md#sensor-tokens).

The fractional epoch is ``e = step / steps_per_epoch`` (equivalently epoch + step-in-epoch / steps_per_epoch), so a
resumed run computes exactly the values of an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["lr_at", "universal_prob", "replace_with_universal"]


def lr_at(step: int, steps_per_epoch: int, base_lr: float, epochs: float, warmup_epochs: float,
          min_lr: float = 0.0) -> float:
    """Linear warm-up then half-cosine decay, evaluated at fractional epoch ``e = step / steps_per_epoch``.

    ``lr = base·e/warmup`` while ``e < warmup``; then ``min_lr + (base − min_lr)·½·(1 + cos(π·(e − warmup)/(epochs −
    warmup)))`` (docs/original/recipe.md#optimiser-and-schedule; the same value for every parameter group). Past ``epochs`` it stays at ``min_lr``.
    """
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    e = step / steps_per_epoch
    if e < warmup_epochs:
        return base_lr * e / warmup_epochs
    if e >= epochs:
        return min_lr
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (e - warmup_epochs) / (epochs - warmup_epochs)))


def universal_prob(epoch_float: float, beta_start: float, beta_end: float, epochs: float) -> float:
    """Probability of replacing a sample's sensor id by the universal id -1
    (docs/original/architecture.md#sensor-tokens): ``beta_start + (beta_end − beta_start)·e/epochs`` at fractional epoch
    ``e``."""
    return beta_start + (beta_end - beta_start) * epoch_float / epochs


def replace_with_universal(sensors: Sequence[torch.Tensor], p: float, gen: torch.Generator) -> list:
    """Replace each sample's id by -1 with probability ``p``; one Bernoulli draw per sample, shared by all tensors in
    ``sensors`` (stage 2 applies the same mask to anchor, positive and negative ids). Drawn on CPU from ``gen``."""
    b = sensors[0].shape[0]
    if any(s.shape != (b,) for s in sensors):
        raise ValueError(f"sensor tensors must all have shape ({b},), got {[tuple(s.shape) for s in sensors]}")
    hit = torch.rand(b, generator=gen) < p  # (B,) bool, CPU
    return [torch.where(hit.to(s.device), torch.full_like(s, -1), s) for s in sensors]

