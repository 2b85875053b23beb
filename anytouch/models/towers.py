"""CLIP vision and text towers used by stage 2 (Radford et al. 2021; HF ``CLIPVisionTransformer`` /
``CLIPTextTransformer`` semantics, docs/original/architecture.md#configurations,
docs/original/recipe.md#stage-2-alignment-loss).

The vision tower carries LoRA on q/k/v/out (docs/original/checkpoints.md#stage-2-file) when ``lora_rank > 0``. The text
tower pools at the argmax of ``input_ids`` when ``eos_token_id == 2`` (the legacy HF rule the DataComp config triggers),
else at the first ``eos_token_id``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .config import TextCfg, TowerCfg
from .layers import LoRALinear, Transformer

__all__ = ["VisionTower", "TextTower"]


class VisionTower(nn.Module):
    """CLIP ViT image tower: ``forward(pixels (B,3,H,W), CLIP-normalised) -> (B, projection_dim)``."""

    def __init__(self, cfg: TowerCfg, projection_dim: int, lora_rank: int = 0, lora_alpha: float = 1.0):
        super().__init__()
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.randn(cfg.width) * cfg.width ** -0.5)
        self.patch_embed = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        self.pos_embed = nn.Parameter(torch.randn(cfg.num_patches + 1, cfg.width) * 0.02)
        self.norm_pre = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.blocks = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_width, cfg.layer_norm_eps, cfg.act,
                                  lora_rank, lora_alpha)
        self.norm_post = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.proj = nn.Linear(cfg.width, projection_dim, bias=False)

    @property
    def lora_rank(self) -> int:
        return self.blocks[0].self_attn.q_proj.rank if len(self.blocks) else 0

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        s = self.cfg.image_size
        if pixels.ndim != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[-2:]) != (s, s):
            raise ValueError(f"vision pixels must be (B, 3, {s}, {s}), got {tuple(pixels.shape)}; "
                             f"use anytouch.preprocess_vision(..., size={s})")
        x = self.patch_embed(pixels.to(self.patch_embed.weight.dtype)).flatten(2).transpose(1, 2)  # (B, N, W)
        cls = self.cls_token.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.blocks(self.norm_pre(x))
        return self.proj(self.norm_post(x[:, 0]))

    def lora_modules(self):
        return [m for m in self.modules() if isinstance(m, LoRALinear) and m.rank > 0]

    def merge_lora(self) -> None:
        """Fold every LoRA update into its base weight (W <- W + scale · B A) and drop the LoRA parameters."""
        for m in self.lora_modules():
            m.merge_()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.blocks.grad_checkpointing = enable


class TextTower(nn.Module):
    """CLIP text transformer: ``forward(input_ids (B, L), attention_mask (B, L)) -> (B, projection_dim)``."""

    def __init__(self, cfg: TextCfg, projection_dim: int):
        super().__init__()
        self.cfg = cfg
        self.token_embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_embed = nn.Parameter(torch.randn(cfg.context_length, cfg.width) * 0.01)
        self.blocks = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_width, cfg.layer_norm_eps, cfg.act)
        self.norm_final = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.proj = nn.Linear(cfg.width, projection_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if input_ids.ndim != 2 or input_ids.shape[1] > self.cfg.context_length:
            raise ValueError(f"input_ids must be (B, L<={self.cfg.context_length}), got {tuple(input_ids.shape)}")
        ids = input_ids.long()
        b, n = ids.shape
        x = self.token_embed(ids) + self.pos_embed[:n]
        # causal + key padding mask (True = may attend); every token may attend to itself so that fully padded rows
        # stay finite (they are never pooled)
        allowed = torch.ones(n, n, dtype=torch.bool, device=ids.device).tril()
        allowed = allowed.expand(b, 1, n, n)
        if attention_mask is not None:
            allowed = allowed & attention_mask.bool()[:, None, None, :]
            allowed = allowed | torch.eye(n, dtype=torch.bool, device=ids.device)
        x = self.norm_final(self.blocks(x, allowed))
        if self.cfg.eos_token_id == 2:  # legacy HF rule: the EOT token has the largest id
            pool_at = ids.argmax(dim=-1)
        else:
            pool_at = (ids == self.cfg.eos_token_id).int().argmax(dim=-1)
        return self.proj(x[torch.arange(b, device=ids.device), pool_at])
