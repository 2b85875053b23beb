"""The AnyTouch touch encoder (Feng et al., ICLR 2025), docs/original/architecture.md.

A CLIP ViT whose token sequence is ``[CLS, 5 sensor tokens, patches]``. One patch embedding serves static images and
3-frame clips: a Conv3d with weight (D, 3 frames, 3 rgb, p, p) fed the (B, T, C, H, W) tensor as it is, so that
the frame axis acts as the conv's input channels and RGB as its depth (the original's axis layout,
docs/original/architecture.md#patch-embedding). Images are repeated to 3 identical frames; clips use their first 3
frames.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..sensors import SensorLike, sensor_tensor
from .config import ArchConfig
from .layers import Transformer

__all__ = ["TouchEncoder", "random_masking"]


def random_masking(x: torch.Tensor, mask_ratio: float, noise: Optional[torch.Tensor] = None):
    """Per-sample shuffle masking as in MAE (docs/original/architecture.md#random-masking).

    x: (B, N, D); noise: (B, N) (uniform by default; argsort ascending, the first ``int(N·(1-ratio))`` are kept).
    Returns (x_kept (B, K, D), mask (B, N) with 1 = removed in original patch order, ids_restore (B, N)).
    """
    b, n, d = x.shape
    keep = int(n * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(b, n, device=x.device)
    elif noise.shape != (b, n):
        raise ValueError(f"noise must have shape {(b, n)}, got {tuple(noise.shape)}")
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))  # (B, K, D)
    mask = torch.ones(b, n, device=x.device, dtype=x.dtype)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # back to original patch order
    return x_kept, mask, ids_restore


class TouchEncoder(nn.Module):
    """CLIP ViT touch encoder with sensor tokens and a shared image/clip patch embedding.

    ``forward(touch, sensor, pooling="cls") -> (B, projection_dim)`` (not normalised). ``touch`` is an
    ImageNet-normalised (B, 3, H, W) image batch or (B, T, 3, H, W) clip batch (T >= 3; the first 3 frames are used).
    ``sensor`` is an int, a name, a list, or a tensor of ids (-1 = universal token).

    Input contract (shared with the AnyTouch 2 encoder, so that embedding, streaming and policy code need not know
    the family): ``num_frames`` consecutive frames (``frame_stride`` 1) make a clip, and
    :meth:`preprocess` turns raw frames into this input.
    """

    family = "anytouch"  # the sensor-table family (anytouch.sensors.SENSOR_TABLE_SIZE)
    frame_stride = 1  # a clip is num_frames consecutive frames

    def __init__(self, arch: ArchConfig):
        super().__init__()
        t = arch.touch
        self.arch = arch
        self.width = t.width
        self.patch_size = t.patch_size
        self.image_size = t.image_size
        self.num_frames = arch.num_frames
        self.num_patches = t.num_patches
        self.num_sensors = arch.num_sensors
        self.num_prefix_tokens = 1 + arch.tokens_per_sensor  # CLS + sensor tokens; patches start here

        self.cls_token = nn.Parameter(torch.randn(t.width) * t.width ** -0.5)
        self.pos_embed = nn.Parameter(torch.randn(t.num_patches + 1, t.width) * 0.02)
        # in_channels = frames, depth = RGB (docs/original/architecture.md#patch-embedding): the kernel is (D, frames,
        # rgb, p, p)
        self.patch_embed = nn.Conv3d(
            arch.num_frames, t.width, kernel_size=(3, t.patch_size, t.patch_size),
            stride=(3, t.patch_size, t.patch_size), bias=False,
        )
        self.sensor_tokens = nn.Parameter(torch.randn(arch.num_sensors, arch.tokens_per_sensor, t.width) * 0.02)
        self.norm_pre = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.blocks = Transformer(t.width, t.layers, t.heads, t.mlp_width, t.layer_norm_eps, t.act)
        self.norm_post = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.proj = nn.Linear(t.width, arch.projection_dim, bias=False)

    # -- inputs ---------------------------------------------------------------------------------------------
    def preprocess(self, frames: torch.Tensor, background: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Raw frames -> this encoder's input (resize to ``image_size``, ImageNet statistics), on their device.

        ``frames``: uint8 (or float in [0, 1]) (B,H,W,3) / (B,3,H,W) images or (B,T,H,W,3) / (B,T,3,H,W) clips.
        ``background``: optional no-contact frame(s) subtracted first (the original AnyTouch does not use one).
        See :func:`anytouch.preprocess.preprocess_touch_batch`.
        """
        from ..preprocess import preprocess_touch_batch  # models stay importable without PIL

        return preprocess_touch_batch(frames, size=self.image_size, background=background)

    def prepare_input(self, touch: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) image -> 3 identical frames; (B,T,3,H,W) clip -> its first 3 frames. Returns (B,3,3,H,W).

        ``touch`` must be floating point (ImageNet-normalised); raw uint8 frames raise a TypeError.
        """
        s = self.image_size
        if not touch.is_floating_point():
            raise TypeError(
                f"touch must be a floating-point tensor of ImageNet-normalised frames, got dtype {touch.dtype}; "
                "turn raw (uint8) frames into model input with anytouch.preprocess_touch (anytouch.preprocess)"
            )
        if touch.ndim == 4 and touch.shape[1] == 3:
            x = touch.unsqueeze(1).expand(-1, self.num_frames, -1, -1, -1)
        elif touch.ndim == 5 and touch.shape[1] >= self.num_frames and touch.shape[2] == 3:
            x = touch[:, : self.num_frames]
        else:
            raise ValueError(
                f"touch must be a (B, 3, {s}, {s}) image batch or a (B, T>={self.num_frames}, 3, {s}, {s}) clip batch, "
                f"got shape {tuple(touch.shape)}"
            )
        if tuple(x.shape[-2:]) != (s, s):
            raise ValueError(f"touch frames must be {s}x{s} for this model, got {tuple(x.shape[-2:])}; "
                             f"resize with anytouch.preprocess_touch(..., size={s})")
        return x

    def slots(self, sensor: SensorLike, batch: int, device) -> torch.Tensor:
        """Sensor spec -> (B,) row indices into the sensor table (-1 -> last row, the universal token)."""
        return sensor_tensor(sensor, batch, self.num_sensors, device=device)

    # -- encoder --------------------------------------------------------------------------------------------
    def forward_features(
        self,
        touch: torch.Tensor,
        sensor: SensorLike,
        mask_ratio: float = 0.0,
        noise: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Run the transformer.

        Returns (tokens (B, 6 + K, D) raw last hidden state, mask (B, N) or None, ids_restore (B, N) or None),
        K = N unmasked or int(N·(1-mask_ratio)) when masking.
        """
        x = self.prepare_input(touch)
        b = x.shape[0]
        x = self.patch_embed(x.to(self.patch_embed.weight.dtype))  # (B, D, 1, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D), raster order
        x = x + self.pos_embed[1:]
        mask = ids_restore = None
        if mask_ratio > 0:
            x, mask, ids_restore = random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[0]).expand(b, 1, -1)  # (B, 1, D)
        sens = self.sensor_tokens[self.slots(sensor, b, x.device)]  # (B, 5, D), no positional embedding
        x = torch.cat([cls, sens, x], dim=1)
        x = self.blocks(self.norm_pre(x))
        return x, mask, ids_restore

    def pool(self, tokens: torch.Tensor, pooling: str = "cls") -> torch.Tensor:
        """tokens (B, L, D) -> (B, P). ``cls``: proj(post-LN(CLS)); ``global``: mean of projected patch tokens."""
        if pooling == "cls":
            return self.proj(self.norm_post(tokens[:, 0]))
        if pooling == "global":
            return self.proj(tokens[:, self.num_prefix_tokens:]).mean(dim=1)
        raise ValueError(f"unknown pooling {pooling!r}; expected 'cls' or 'global'")

    def forward(self, touch: torch.Tensor, sensor: SensorLike, pooling: str = "cls") -> torch.Tensor:
        tokens, _, _ = self.forward_features(touch, sensor)
        return self.pool(tokens, pooling)

    # -- timm-style helpers ---------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.blocks.grad_checkpointing = enable

    def no_weight_decay(self) -> set:
        """Names excluded from weight decay beyond the 1-D / bias rule. The AnyTouch recipe
        (docs/original/recipe.md#optimiser-and-schedule) decays every other tensor, including ``sensor_tokens`` and
        ``pos_embed``, so this is empty."""
        return set()
