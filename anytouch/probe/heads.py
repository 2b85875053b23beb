"""Linear probe heads: the single head of the official protocol and G heads trained together on cached features.

Initialisation follows the original ``init_head`` (docs/original/checkpoints.md#what-the-probe-reads): weight ~
trunc_normal(std 0.01) (timm's, truncated at +-2 absolute, i.e. not truncated in practice), bias keeps PyTorch's default
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. Both draw from an explicit generator, so the official head and every head of a
grid start from the same values.

The optimiser of docs/original/probes.md#protocol is AdamW over the head alone, one parameter group, weight decay on the
bias too. :class:`GridAdamW` is the same update for a stack of G heads with one learning rate and weight decay per head
(``torch.optim.AdamW`` has one value per parameter group, and a group cannot hold a slice of a tensor).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn

__all__ = ["init_head_", "LinearHead", "GridHeads", "GridAdamW"]


def init_head_(weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator) -> None:
    """In place: weight (C, F) ~ trunc_normal(0, 0.01, [-2, 2]); bias (C,) ~ U(+-1/sqrt(F))."""
    with torch.no_grad():
        nn.init.trunc_normal_(weight, std=0.01, a=-2.0, b=2.0, generator=generator)
        bound = 1.0 / math.sqrt(weight.shape[1])
        bias.uniform_(-bound, bound, generator=generator)


class LinearHead(nn.Linear):
    """``nn.Linear(in_features, outputs)`` initialised by :func:`init_head_` from ``generator``."""

    def __init__(self, in_features: int, outputs: int, generator: torch.Generator):
        super().__init__(in_features, outputs)
        init_head_(self.weight, self.bias, generator)


class GridHeads(nn.Module):
    """G linear heads in one tensor: ``weight`` (G, C, F), ``bias`` (G, C); all start from the same init.

    ``forward(x (B, F)) -> logits (G, B, C)``.
    """

    def __init__(self, num_heads: int, in_features: int, outputs: int, generator: torch.Generator):
        super().__init__()
        w, b = torch.empty(outputs, in_features), torch.empty(outputs)
        init_head_(w, b, generator)
        self.weight = nn.Parameter(w.expand(num_heads, -1, -1).clone())
        self.bias = nn.Parameter(b.expand(num_heads, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bf,gcf->gbc", x, self.weight) + self.bias[:, None, :]  # (G, B, C)


class GridAdamW:
    """AdamW (``torch.optim.AdamW``'s update, decoupled weight decay) for parameters whose first axis indexes G
    independent heads, each with its own learning rate and weight decay.

    Args:
        params: tensors of shape (G, ...), all with the same G.
        weight_decay: (G,) weight decay per head.
        betas, eps: as ``torch.optim.AdamW``.
    """

    def __init__(self, params: Sequence[torch.Tensor], weight_decay: torch.Tensor,
                 betas: Tuple[float, float] = (0.9, 0.99), eps: float = 1e-8):
        self.params = list(params)
        g = weight_decay.shape[0]
        bad = [tuple(p.shape) for p in self.params if p.shape[0] != g]
        if bad:
            raise ValueError(f"every parameter must have {g} heads on its first axis; got shapes {bad}")
        self.weight_decay = weight_decay
        self.betas, self.eps, self.step_count = tuple(betas), eps, 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update with ``lr`` (G,) (the schedule's value for each head at this step)."""
        b1, b2 = self.betas
        self.step_count += 1
        bc1, bc2_sqrt = 1 - b1 ** self.step_count, math.sqrt(1 - b2 ** self.step_count)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.ndim - 1)  # broadcast (G,) over the head's own axes
            lr_g = lr.to(p).view(shape)
            p.mul_(1 - lr_g * self.weight_decay.to(p).view(shape))
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.sub_(lr_g / bc1 * m / (v.sqrt() / bc2_sqrt + self.eps))
