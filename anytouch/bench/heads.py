"""Benchmark heads on frozen features: a linear probe on pooled features and the attentive pooler over tokens.

The attentive pooler follows Sparsh's ``AttentivePooler`` (V-JEPA's): one learned query (1, 1, D), trunc-normal
std 0.02; one cross-attention block whose keys and values come from LayerNorm'd tokens (the query is not
normalised), q Linear(D, D) and kv Linear(D, 2D) with bias, scaled dot-product attention, output projection, a
residual onto the query, then ``x + MLP(LN(x))`` (D -> 4D GELU -> D); the output projection and the MLP's second
layer are divided by sqrt(2) at initialisation (depth 1). A task layer maps the pooled vector to the outputs:
Linear, or Linear -> ReLU -> Linear with ``hidden`` units. ``num_heads`` defaults to width // 64 (the rule the
benchmark fixes for every encoder, rather than upstream's 12 or 16 regardless of width).

Both heads output (B, num_outputs): class logits, one binary logit, or regression values in standardised units.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.layers import MLP

__all__ = ["LinearProbeHead", "AttentivePooler", "AttentiveHead", "build_head", "head_loss", "HEADS", "output_size"]

HEADS = ("linear", "attentive")


def output_size(kind: str, num_outputs: int) -> int:
    """Head outputs for a task kind: C logits (classification), 1 logit (binary), K values (regression)."""
    if kind == "binary":
        return 1
    if kind in ("classification", "regression"):
        return num_outputs
    raise ValueError(f"unknown task kind {kind!r}; expected classification, binary or regression")


def _task_layer(dim: int, outputs: int, hidden: int) -> nn.Module:
    if hidden:
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, outputs))
    return nn.Linear(dim, outputs)


class LinearProbeHead(nn.Module):
    """``forward(tokens, pooled (B, P)) -> (B, outputs)``: a linear layer (or a small MLP) on the pooled feature."""

    def __init__(self, dim: int, outputs: int, hidden: int = 0):
        super().__init__()
        self.fc = _task_layer(dim, outputs, hidden)

    def forward(self, tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled)


class AttentivePooler(nn.Module):
    """tokens (B, N, D) -> (B, D): one learned query cross-attending to LayerNorm'd tokens, then a residual MLP."""

    def __init__(self, dim: int, num_heads: int = 0, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads = num_heads or max(dim // 64, 1)
        if dim % self.num_heads:
            raise ValueError(f"attentive pooler: width {dim} is not divisible by num_heads={self.num_heads}")
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), "gelu")
        with torch.no_grad():  # depth-1 residual rescaling, as upstream
            self.proj.weight.div_(math.sqrt(2.0))
            self.mlp.fc2.weight.div_(math.sqrt(2.0))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, d = tokens.shape
        h = self.num_heads
        kv = self.kv(self.norm_kv(tokens)).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4)  # (2, B, h, N, d/h)
        q = self.q(self.query.expand(b, -1, -1)).view(b, 1, h, d // h).transpose(1, 2)  # (B, h, 1, d/h)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1]).transpose(1, 2).reshape(b, 1, d)
        x = self.query + self.proj(y)  # residual onto the (un-normalised) query
        x = x + self.mlp(self.norm_mlp(x))
        return x[:, 0]


class AttentiveHead(nn.Module):
    """``forward(tokens (B, N, D), pooled) -> (B, outputs)``: :class:`AttentivePooler` then the task layer."""

    def __init__(self, dim: int, outputs: int, num_heads: int = 0, hidden: int = 0):
        super().__init__()
        self.pooler = AttentivePooler(dim, num_heads)
        self.fc = _task_layer(dim, outputs, hidden)

    def forward(self, tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooler(tokens))


def build_head(name: str, kind: str, num_outputs: int, embed_dim: int, pooled_dim: int, num_heads: int = 0,
               hidden: int = 0) -> nn.Module:
    """A head for a task (``kind``, ``num_outputs``) on an encoder (token width ``embed_dim``, pooled width
    ``pooled_dim``); initialised from torch's global RNG (seed it first)."""
    outputs = output_size(kind, num_outputs)
    if name == "linear":
        return LinearProbeHead(pooled_dim, outputs, hidden)
    if name == "attentive":
        return AttentiveHead(embed_dim, outputs, num_heads, hidden)
    raise ValueError(f"unknown head {name!r}; expected one of: {', '.join(HEADS)}")


def head_loss(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Training loss: cross-entropy (classification), BCE with logits (binary), MSE on standardised targets."""
    if kind == "classification":
        return F.cross_entropy(out, target.long())
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(out[:, 0], target.float())
    return F.mse_loss(out, target.float().reshape(out.shape))
