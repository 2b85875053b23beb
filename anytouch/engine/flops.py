"""Analytic FLOP count of a stage-1 (TouchMAE) step, for throughput / MFU reports.

Counts matrix-multiply FLOPs only (2 per multiply-add), the usual MFU convention: patch embedding, every linear
layer, and the two attention products; LayerNorm, GELU, softmax and the loss are left out. Training =
3 x forward (the backward pass costs about twice the forward).
"""
from __future__ import annotations

from typing import Dict

from ..models.config import ArchConfig

__all__ = ["transformer_flops", "mae_forward_flops"]


def transformer_flops(tokens: int, width: int, layers: int, mlp_width: int) -> int:
    """Forward FLOPs of ``layers`` pre-LN blocks on one sequence of ``tokens`` tokens.

    Per block: q, k, v, out projections ``4 · 2·T·D²``; scores Q·Kᵀ and weights·V ``2 · 2·T²·D``; MLP ``2 · 2·T·D·M``.
    """
    t, d = tokens, width
    return layers * (8 * t * d * d + 4 * t * t * d + 4 * t * d * mlp_width)


def mae_forward_flops(arch: ArchConfig, mask_ratio: float = 0.75, video: bool = False) -> Dict[str, int]:
    """Forward FLOPs of TouchMAE for ONE sample (multiply by the batch size).

    The encoder sees ``1 + tokens_per_sensor + int(N·(1 − mask_ratio))`` tokens (70 for ViT-L/14 at 0.75), the
    decoder ``1 + tokens_per_sensor + N`` (262). Returns the parts and ``total``.
    """
    t, dec, p = arch.touch, arch.decoder, arch.touch.patch_size
    n = t.num_patches
    prefix = 1 + arch.tokens_per_sensor
    enc_tokens = prefix + int(n * (1 - mask_ratio))
    dec_tokens = prefix + n
    head_out = p * p * 3 * (arch.pred_frames if video else 1)
    parts = {
        # Conv3d over all N patches (masking comes after the embedding): kernel of frames x rgb x p x p per output
        "patch_embed": 2 * n * t.width * arch.num_frames * 3 * p * p,
        "encoder": transformer_flops(enc_tokens, t.width, t.layers, t.mlp_width),
        "projection": 2 * enc_tokens * t.width * arch.projection_dim,  # every token is projected
        # (docs/original/architecture.md#touch-encoder)
        "decoder_embed": 2 * enc_tokens * arch.projection_dim * dec.width,
        "decoder": transformer_flops(dec_tokens, dec.width, dec.layers, dec.mlp_width),
        "head": 2 * n * dec.width * head_out,  # the prefix tokens are dropped before the head
    }
    parts["total"] = sum(parts.values())
    return parts
