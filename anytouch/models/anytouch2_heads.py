"""The probe heads of the AnyTouch 2 downstream code (docs/anytouch2.md) and the frozen-encoder probe around them.

The attentive pooler is the V-JEPA head (Bardes et al. 2024) those probes use: one learned query attends over the
LayerNorm'd tokens (the query itself is not normalised), then a pre-LN MLP on the query. Parameter names follow the
upstream files (``pooler.query_tokens``, ``pooler.cross_attention_block.xattn.{q,kv,proj}``, ``probe.0`` ...) so a
probe file loads by prefix alone.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sensors import SensorLike
from .anytouch2 import AnyTouch2Encoder
from .layers import MLP

__all__ = ["CrossAttention", "CrossAttentionBlock", "AttentivePooler", "AttentiveHead", "AnyTouch2Probe"]


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, n, D) over tokens (B, N, D): ``q`` and a fused ``kv`` projection."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, n, d = q.shape
        h = self.heads
        q = self.q(q).view(b, n, h, d // h).transpose(1, 2)  # (B, h, n, d/h)
        k, v = self.kv(x).view(b, x.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, N, d/h)
        y = F.scaled_dot_product_attention(q, k, v)  # scale (d/h)^-1/2
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class CrossAttentionBlock(nn.Module):
    """q + xattn(q, LN1(x)), then + MLP(LN2(.)) with exact GELU."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.xattn = CrossAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio), "gelu")

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


class AttentivePooler(nn.Module):
    """Tokens (B, N, D) -> one pooled vector (B, D) through a learned query."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, width))
        self.cross_attention_block = CrossAttentionBlock(width, heads, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query_tokens.expand(x.shape[0], -1, -1)
        return self.cross_attention_block(q, x)[:, 0]


class AttentiveHead(nn.Module):
    """Attentive pooler, then ``probe``: Linear(D, C) (Cloth) or Linear(D, hidden) -> ReLU -> Linear(hidden, C)
    (ToucHD force), as ``probe.0`` / ``probe.2``."""

    def __init__(self, width: int, heads: int, out: int, hidden: Optional[int] = None):
        super().__init__()
        self.pooler = AttentivePooler(width, heads)
        layers = [nn.Linear(width, out)] if hidden is None else [nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out)]
        self.probe = nn.Sequential(*layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.probe(self.pooler(tokens))


class AnyTouch2Probe(nn.Module):
    """A frozen AnyTouch 2 encoder and a trained head: ``probe(touch, sensor)`` -> the head output (B, C).

    ``pooling`` is what the head reads: ``"cls"`` (Linear on the projected CLS), ``"last"`` (Linear on the mean raw
    token of the last tube) or ``"none"`` (an :class:`AttentiveHead` over all raw tokens). ``args`` keeps the
    upstream run's arguments (dataset, num_frames, ...) as a plain dict.
    """

    def __init__(self, encoder: AnyTouch2Encoder, head: nn.Module, pooling: str, args: Optional[dict] = None):
        super().__init__()
        self.tactile_model = encoder
        self.head = head
        self.pooling = pooling
        self.args = dict(args or {})

    @property
    def num_frames(self) -> int:
        return self.tactile_model.num_frames

    def preprocess(self, frames: torch.Tensor, background: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The encoder's preprocessing (:meth:`AnyTouch2Encoder.preprocess`)."""
        return self.tactile_model.preprocess(frames, background)

    def forward(self, touch: torch.Tensor, sensor: SensorLike) -> torch.Tensor:
        return self.head(self.tactile_model(touch, sensor, pooling=self.pooling))
