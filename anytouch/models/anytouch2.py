"""The AnyTouch 2 touch encoder (GeWu-Lab, ICLR 2026), described in docs/anytouch2.md.

The same CLIP ViT with ``[CLS, 5 sensor tokens, patches]`` as AnyTouch 1 (the blocks come from
:mod:`anytouch.models.layers`), but over short clips: a Conv3d with the conventional axes (in-channels = RGB, depth =
time) cuts the clip into tubes of ``tube_size`` frames, patch tokens are time-major (tube, row, column) and a learned
position table has one row per patch token of the whole clip plus CLS. The input is CLIP-normalised,
background-subtracted frames (:meth:`AnyTouch2Encoder.preprocess`).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..sensors import SensorLike, sensor_tensor
from .config import AnyTouch2Config
from .layers import Transformer

__all__ = ["AnyTouch2Encoder", "POOLINGS"]

POOLINGS = ("cls", "tokens", "none", "last")


class AnyTouch2Encoder(nn.Module):
    """``forward(touch, sensor, pooling="cls")``.

    ``touch``: CLIP-normalised float, a (B, T, 3, S, S) clip with T = ``num_frames`` or a (B, 3, S, S) image (seen as
    T identical frames); S = ``image_size``. ``sensor``: an id, a name, a list or a tensor (-1 / "universal" = the
    last slot). ``pooling``:

    * ``"cls"`` -> (B, P): proj(post-LN(CLS));
    * ``"tokens"`` -> (B, L, P): proj(post-LN(every token)), the upstream default output;
    * ``"none"`` -> (B, L, D): the raw last hidden state (what the probes consume);
    * ``"last"`` -> (B, D): the mean of the raw patch tokens of the last tube.

    L = 1 + 5 + N with N = (T / tube_size) · (S / patch)^2.
    """

    family = "anytouch2"

    def __init__(self, config: Optional[AnyTouch2Config] = None):
        super().__init__()
        c = config if config is not None else AnyTouch2Config()
        t = c.touch
        self.config = c
        self.width = t.width
        self.patch_size = t.patch_size
        self.image_size = t.image_size
        self.num_frames = c.num_frames
        self.frame_stride = c.frame_stride
        self.tube_size = c.tube_size
        self.grid = t.grid
        self.num_patches = c.num_patches
        self.num_sensors = c.num_sensors
        self.num_prefix_tokens = 1 + c.tokens_per_sensor  # CLS + sensor tokens; patches start here

        self.cls_token = nn.Parameter(torch.randn(t.width) * t.width ** -0.5)
        self.pos_embed = nn.Parameter(torch.randn(c.num_patches + 1, t.width) * 0.02)  # row 0 = CLS
        self.patch_embed = nn.Conv3d(3, t.width, kernel_size=(c.tube_size, t.patch_size, t.patch_size),
                                     stride=(c.tube_size, t.patch_size, t.patch_size), bias=False)
        self.sensor_tokens = nn.Parameter(torch.randn(c.num_sensors, c.tokens_per_sensor, t.width) * 0.02)
        self.norm_pre = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.blocks = Transformer(t.width, t.layers, t.heads, t.mlp_width, t.layer_norm_eps, t.act)
        self.norm_post = nn.LayerNorm(t.width, eps=t.layer_norm_eps)
        self.proj = nn.Linear(t.width, c.projection_dim, bias=False)

    # -- inputs ---------------------------------------------------------------------------------------------
    def prepare_input(self, touch: torch.Tensor) -> torch.Tensor:
        """(B,3,S,S) image -> T identical frames; (B,T,3,S,S) clip with T = num_frames as is. Returns (B,T,3,S,S).

        Any other frame count is a ValueError: the model has one position row per patch of a T-frame clip, and a
        clip is never reinterpreted as (B,3,T,S,S) (a 3-frame clip would have its time and colour axes swapped).
        """
        s, t = self.image_size, self.num_frames
        if not touch.is_floating_point():
            raise TypeError(f"touch must be a floating-point tensor of CLIP-normalised frames, got dtype {touch.dtype}; "
                            "turn raw frames into model input with encoder.preprocess(frames, background=...)")
        if touch.ndim == 4 and touch.shape[1] == 3:
            x = touch.unsqueeze(1).expand(-1, t, -1, -1, -1)
        elif touch.ndim == 5 and touch.shape[2] == 3:
            if touch.shape[1] != t:
                raise ValueError(
                    f"this AnyTouch 2 encoder takes clips of exactly {t} frames (B, {t}, 3, {s}, {s}), got "
                    f"{touch.shape[1]} frames in shape {tuple(touch.shape)}; sample {t} frames "
                    f"(stride {self.frame_stride} for this variant) or load the matching variant's weights"
                )
            x = touch
        else:
            raise ValueError(f"touch must be a (B, 3, {s}, {s}) image batch or a (B, {t}, 3, {s}, {s}) clip batch "
                             f"(frames, then RGB), got shape {tuple(touch.shape)}")
        if tuple(x.shape[-2:]) != (s, s):
            raise ValueError(f"touch frames must be {s}x{s} for this model, got {tuple(x.shape[-2:])}; "
                             f"use encoder.preprocess, which resizes to {s}")
        return x

    def slots(self, sensor: SensorLike, batch: int, device) -> torch.Tensor:
        """Sensor spec -> (B,) row indices into the sensor table (-1 -> last row, the universal token)."""
        return sensor_tensor(sensor, batch, self.num_sensors, device=device)

    def preprocess(self, frames: torch.Tensor, background: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Raw frames -> this encoder's input: background subtraction, resize to ``image_size``, CLIP statistics.

        ``frames``: uint8 (or float in [0, 1]) (B,T,H,W,3) / (B,T,3,H,W) clips or (B,H,W,3) / (B,3,H,W) images, RGB,
        on any device. ``background``: one frame per sample, (B,H,W,3) / (B,3,H,W) (or a single (H,W,3) / (3,H,W)
        frame for the whole batch), broadcast over T. See :func:`anytouch.preprocess.preprocess_touch2_batch`.
        """
        from ..preprocess import preprocess_touch2_batch  # models stay importable without PIL

        return preprocess_touch2_batch(frames, background=background, size=self.image_size)

    # -- encoder --------------------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, 3, S, S) -> patch embeddings (B, N, D) in time-major order (tube, grid row, grid column)."""
        x = x.permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S): RGB in-channels, time as the conv depth
        x = self.patch_embed(x.to(self.patch_embed.weight.dtype))  # (B, D, T / tube, g, g)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def forward_features(self, touch: torch.Tensor, sensor: SensorLike) -> torch.Tensor:
        """Raw last hidden state (B, L, D): ``[CLS, sensor tokens, patch tokens]`` after the last block."""
        x = self.patchify(self.prepare_input(touch)) + self.pos_embed[1:]
        b = x.shape[0]
        cls = (self.cls_token + self.pos_embed[0]).expand(b, 1, -1)  # (B, 1, D)
        sens = self.sensor_tokens[self.slots(sensor, b, x.device)]  # (B, 5, D), no positional embedding
        x = torch.cat([cls, sens, x], dim=1)
        return self.blocks(self.norm_pre(x))

    def pool(self, tokens: torch.Tensor, pooling: str = "cls") -> torch.Tensor:
        """Raw tokens (B, L, D) -> the output of ``pooling`` (see the class docstring)."""
        if pooling == "cls":
            return self.proj(self.norm_post(tokens[:, 0]))
        if pooling == "tokens":
            return self.proj(self.norm_post(tokens))
        if pooling == "none":
            return tokens
        if pooling == "last":
            return tokens[:, -self.grid * self.grid:].mean(dim=1)
        raise ValueError(f"unknown pooling {pooling!r} for an AnyTouch 2 encoder; expected one of {', '.join(POOLINGS)}")

    def forward(self, touch: torch.Tensor, sensor: SensorLike, pooling: str = "cls") -> torch.Tensor:
        return self.pool(self.forward_features(touch, sensor), pooling)

    # -- timm-style helpers ---------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.blocks.grad_checkpointing = enable

    def token_index(self, tube: int, row: int, col: int) -> int:
        """Sequence index of the patch token of ``tube`` at grid cell (row, col)."""
        return self.num_prefix_tokens + (tube * self.grid + row) * self.grid + col
