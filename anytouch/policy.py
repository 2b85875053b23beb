"""AnyTouch as the tactile encoder of a robot policy: raw uint8 frame histories on the device -> features.

:class:`TactileEncoder` wraps a :class:`~anytouch.models.TouchEncoder` for a policy: it takes the last frames of a
gel sensor as the camera gives them (uint8, channels last or first, on the GPU when there is one), preprocesses the
batch on that device (:func:`anytouch.preprocess_touch_batch`), keeps the newest 3-frame window the encoder was
trained on, and returns (B, D) features, under bf16 autocast on a GPU.

Three ways to train with it (``tune=``): ``"frozen"`` (default; no gradients, the encoder never leaves eval mode),
``"lora"`` (low-rank adapters on every attention projection of the touch transformer, Hu et al. 2021; the base
weights stay frozen) and ``"last"`` (the last ``blocks`` transformer blocks, the final LayerNorm and the projection
train). :meth:`TactileEncoder.trainable_parameters` gives what the optimizer should see.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn

from .models import TouchEncoder
from .models.layers import LoRALinear
from .preprocess import preprocess_touch_batch
from .sensors import SensorLike

__all__ = ["TactileEncoder", "add_lora", "TUNE_MODES"]

TUNE_MODES = ("frozen", "lora", "last")


def add_lora(encoder: TouchEncoder, rank: int, alpha: float) -> int:
    """Give every attention projection (q, k, v, out) of ``encoder``'s transformer a fresh LoRA update (B = 0, so
    the output is unchanged until it trains). Returns the number of LoRA parameters added."""
    if rank <= 0:
        raise ValueError(f"lora_rank={rank}; expected a positive rank")
    added = 0
    for block in encoder.blocks:
        attn = block.self_attn
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            old = getattr(attn, name)
            if old.rank:
                raise ValueError(f"{name} of the touch encoder already has LoRA (rank {old.rank})")
            new = LoRALinear(old.in_features, old.out_features, bias=old.bias is not None, rank=rank, alpha=alpha)
            new = new.to(device=old.weight.device, dtype=old.weight.dtype)
            with torch.no_grad():
                new.weight.copy_(old.weight)
                if old.bias is not None:
                    new.bias.copy_(old.bias)
            setattr(attn, name, new)
            added += new.lora_A.numel() + new.lora_B.numel()
    return added


class TactileEncoder(nn.Module):
    """A policy's tactile feature module: raw frame histories -> (B, D) features.

    Args:
        encoder: a TouchEncoder, or a checkpoint for :func:`anytouch.load_encoder` (path, hub folder or
            ``hf-hub:org/name``).
        sensor: the sensor name or id (-1 / ``"universal"`` for a sensor the model never saw; see the README on
            that choice); a call may override it.
        tune: ``"frozen"``, ``"lora"`` or ``"last"`` (see the module docstring).
        blocks: for ``tune="last"``: how many of the last transformer blocks train.
        lora_rank, lora_alpha: for ``tune="lora"``.
        pooling: ``"cls"`` (the paper's feature) or ``"global"`` (mean of the patch tokens).
        autocast: run the encoder under bf16 autocast on a GPU (features are returned as float32).

    ``forward(frames, sensor=None)``: ``frames`` uint8 (or float in [0, 1]) of shape (B, T, H, W, 3) or
    (B, T, 3, H, W), oldest frame first, T >= 1 (the newest 3 are used; fewer are padded by repeating the oldest),
    or single images (B, H, W, 3) / (B, 3, H, W). Any H, W: frames are resized on their device.
    """

    def __init__(self, encoder: Union[TouchEncoder, str, Path], sensor: SensorLike = "universal", *,
                 tune: str = "frozen", blocks: int = 1, lora_rank: int = 8, lora_alpha: float = 8.0,
                 pooling: str = "cls", autocast: bool = True):
        super().__init__()
        if tune not in TUNE_MODES:
            raise ValueError(f"tune={tune!r}; expected one of {', '.join(TUNE_MODES)}")
        if pooling not in ("cls", "global"):
            raise ValueError(f"pooling={pooling!r}; expected 'cls' or 'global'")
        if not isinstance(encoder, nn.Module):
            from .checkpoint import load_encoder  # here, not at the top: checkpoint imports the model zoo

            encoder = load_encoder(encoder)
        if not isinstance(encoder, TouchEncoder):
            raise TypeError(f"encoder is a {type(encoder).__name__}; expected a TouchEncoder (anytouch.load_encoder)")
        self.encoder = encoder.eval().requires_grad_(False)
        self.sensor, self.tune, self.pooling, self.autocast = sensor, tune, pooling, autocast
        self.dim = encoder.proj.out_features
        if tune == "lora":
            add_lora(encoder, lora_rank, lora_alpha)
            for name, p in encoder.named_parameters():
                p.requires_grad_("lora_" in name)
        elif tune == "last":
            n = len(encoder.blocks)
            if not 1 <= blocks <= n:
                raise ValueError(f"blocks={blocks}; the touch encoder has {n} blocks (expected 1..{n})")
            for module in (*list(encoder.blocks)[n - blocks:], encoder.norm_post, encoder.proj):
                module.requires_grad_(True)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters ``tune`` trains (none when frozen)."""
        return (p for p in self.encoder.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> "TactileEncoder":
        # the touch transformer has no dropout or batch norm: eval mode is exact in every tuning mode, and
        # policy.train() must not change what a frozen encoder computes
        super().train(mode)
        self.encoder.eval()
        return self

    def window(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) history -> its newest ``num_frames`` frames (oldest first); fewer frames are padded in front
        by repeating the oldest. 4-D image batches pass through."""
        if frames.ndim == 4:
            return frames
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B,T,H,W,3) / (B,T,3,H,W) histories or (B,H,W,3) / (B,3,H,W) images, "
                             f"got shape {tuple(frames.shape)}")
        n = self.encoder.num_frames
        if frames.shape[1] < n:
            pad = frames[:, :1].expand(-1, n - frames.shape[1], *frames.shape[2:])
            frames = torch.cat([pad, frames], dim=1)
        return frames[:, -n:]

    def forward(self, frames: torch.Tensor, sensor: Optional[SensorLike] = None) -> torch.Tensor:
        """Features (B, D), float32, of raw frames (see the class docstring)."""
        x = preprocess_touch_batch(self.window(frames), size=self.encoder.image_size)
        sensor = self.sensor if sensor is None else sensor
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.tune != "frozen"), \
                torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast and x.is_cuda):
            return self.encoder(x, sensor, pooling=self.pooling).float()
