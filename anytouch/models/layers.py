"""Transformer building blocks shared by every tower (docs/original/architecture.md).

One pre-LN block serves the touch encoder, the CLIP vision and text towers and the MAE decoder: they differ only in
width, LayerNorm eps and activation. Parameter names follow Hugging Face CLIP (``self_attn.q_proj``,
``layer_norm1``, ``mlp.fc1``) so CLIP weights map onto them by prefix alone. Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` so GPUs get flash / memory-efficient kernels.
LoRA follows Hu et al. 2021 with PEFT's initialisation (A Kaiming-uniform, B zero) and scale alpha / r.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["LoRALinear", "Attention", "MLP", "Block", "Transformer", "activation"]


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation(name: str) -> nn.Module:
    if name == "gelu":
        return nn.GELU()  # exact (erf) GELU, as HF's "gelu"
    if name == "quick_gelu":
        return QuickGELU()
    raise ValueError(f"unknown activation {name!r}; expected 'gelu' or 'quick_gelu'")


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus a low-rank update: y = x W^T + b + (alpha / r) · x A^T B^T.

    ``lora_A``: (r, in_features), ``lora_B``: (out_features, r). With ``rank == 0`` it is a plain Linear.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rank: int = 0, alpha: float = 1.0):
        super().__init__(in_features, out_features, bias=bias)
        self.rank = rank
        self.scaling = alpha / rank if rank > 0 else 0.0
        if rank > 0:
            self.lora_A = nn.Parameter(torch.empty(rank, in_features))
            self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.rank > 0:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        return y

    @torch.no_grad()
    def merge_(self) -> None:
        """Fold the low-rank update into ``weight`` (W <- W + scale · B A) and drop the LoRA parameters."""
        if self.rank == 0:
            return
        self.weight += (self.lora_B @ self.lora_A) * self.scaling
        del self.lora_A, self.lora_B
        self.rank, self.scaling = 0, 0.0

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", lora_rank={self.rank}, scaling={self.scaling}" if self.rank else "")


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (all with bias)."""

    def __init__(self, width: int, heads: int, lora_rank: int = 0, lora_alpha: float = 1.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = LoRALinear(width, width, rank=lora_rank, alpha=lora_alpha)
        self.k_proj = LoRALinear(width, width, rank=lora_rank, alpha=lora_alpha)
        self.v_proj = LoRALinear(width, width, rank=lora_rank, alpha=lora_alpha)
        self.out_proj = LoRALinear(width, width, rank=lora_rank, alpha=lora_alpha)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, L, W); attn_mask: bool (B, 1, L, L) / (L, L), True = may attend. Returns (B, L, W)."""
        b, n, w = x.shape
        # (B, L, W) -> (B, heads, L, head_dim)
        q, k, v = (p(x).view(b, n, self.heads, w // self.heads).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, w))


class MLP(nn.Module):
    def __init__(self, width: int, mlp_width: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(width, mlp_width)
        self.act = activation(act)
        self.fc2 = nn.Linear(mlp_width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN1(x)), then x + MLP(LN2(x))."""

    def __init__(self, width: int, heads: int, mlp_width: int, eps: float, act: str, lora_rank: int = 0,
                 lora_alpha: float = 1.0):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.self_attn = Attention(width, heads, lora_rank, lora_alpha)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, mlp_width, act)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), attn_mask)
        return x + self.mlp(self.layer_norm2(x))


class Transformer(nn.ModuleList):
    """A stack of :class:`Block` (state-dict keys ``<i>.<block keys>``) with optional gradient checkpointing."""

    def __init__(self, width: int, layers: int, heads: int, mlp_width: int, eps: float, act: str,
                 lora_rank: int = 0, lora_alpha: float = 1.0):
        super().__init__([Block(width, heads, mlp_width, eps, act, lora_rank, lora_alpha) for _ in range(layers)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for blk in self:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(blk, x, attn_mask, use_reentrant=False)
            else:
                x = blk(x, attn_mask)
        return x
