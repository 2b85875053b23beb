"""AnyTouch as the tactile encoder of a robot policy: raw uint8 frame histories on the device -> features.

:class:`TactileEncoder` wraps a touch encoder of either family (AnyTouch 1 :class:`~anytouch.models.TouchEncoder`,
AnyTouch 2 :class:`~anytouch.models.anytouch2.AnyTouch2Encoder`) for a policy. It takes the last frames of a gel
sensor as the camera gives them (uint8, channels last or first, on the GPU when there is one), keeps the window the
encoder was trained on (its ``num_frames`` frames, ``frame_stride`` apart, the newest last: 3 consecutive frames
for AnyTouch 1, 4 frames 2 apart or 2 frames 6 apart for AnyTouch 2), preprocesses the batch on that device with the
encoder's own ``preprocess`` (its statistics; a no-contact background frame subtracted when given, which AnyTouch 2
is trained with), and returns (B, D) features, under bf16 autocast on a GPU.

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
from .models.anytouch2 import AnyTouch2Encoder
from .models.layers import LoRALinear
from .sensors import FAMILY_SENSORS, SensorLike, sensor_id

__all__ = ["TactileEncoder", "add_lora", "check_family_sensor", "window_span", "TUNE_MODES", "POOLINGS"]

TUNE_MODES = ("frozen", "lora", "last")
# the (B, D) poolings a policy can take, per family (AnyTouch 2's "tokens" / "none" give token sequences)
POOLINGS = {"anytouch": ("cls", "global"), "anytouch2": ("cls", "last")}
Encoder = Union[TouchEncoder, AnyTouch2Encoder]


def window_span(encoder: Encoder) -> int:
    """How many consecutive frames one input window of ``encoder`` covers: ``(num_frames - 1) * frame_stride + 1``."""
    return (encoder.num_frames - 1) * encoder.frame_stride + 1


def check_family_sensor(sensor: SensorLike, family: str) -> None:
    """A ValueError for a sensor name the ``family``'s models were not trained on (``"dm"`` is an AnyTouch 2
    sensor: an AnyTouch 1 model's slot 5 is a free, untrained slot). Integer ids and tensors pass (range checks
    happen in the encoder; a free slot may have been trained by ``anytouch adapt``)."""
    names = [sensor] if isinstance(sensor, str) else list(sensor) if isinstance(sensor, (list, tuple)) else []
    known = {sensor_id(n) for n in FAMILY_SENSORS[family]} | {-1}
    for name in names:
        if isinstance(name, str) and not name.strip().lstrip("-").isdigit() and sensor_id(name) not in known:
            raise ValueError(f"sensor {name!r} is not a sensor of the {family} family (its models know "
                             f"{', '.join(FAMILY_SENSORS[family])} and universal); use sensor='universal' for it, "
                             "or train a free slot with anytouch adapt")


def add_lora(encoder: Encoder, rank: int, alpha: float) -> int:
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
        encoder: a TouchEncoder or AnyTouch2Encoder, or a checkpoint for :func:`anytouch.load_encoder` (path, hub
            folder or ``hf-hub:org/name``).
        sensor: the sensor name or id (-1 / ``"universal"`` for a sensor the model never saw; see the README on
            that choice; ``"dm"`` only for AnyTouch 2); a call may override it.
        background: a no-contact frame of the sensor, (H, W, 3) / (3, H, W) for every sample or one per sample
            (B, H, W, 3) / (B, 3, H, W), uint8 or float in [0, 1]; subtracted by the encoder's ``preprocess``
            (AnyTouch 2 is trained with it; without one an AnyTouch 2 input is only resized and normalised). It
            follows the module's device; a call may override it.
        tune: ``"frozen"``, ``"lora"`` or ``"last"`` (see the module docstring).
        blocks: for ``tune="last"``: how many of the last transformer blocks train.
        lora_rank, lora_alpha: for ``tune="lora"``.
        pooling: ``"cls"`` (the paper's feature; both families), ``"global"`` (AnyTouch 1: mean of the projected
            patch tokens) or ``"last"`` (AnyTouch 2: mean of the raw tokens of the last tube, width-sized).
        autocast: run the encoder under bf16 autocast on a GPU (features are returned as float32).

    ``forward(frames, sensor=None, background=None)``: ``frames`` uint8 (or float in [0, 1]) of shape
    (B, T, H, W, 3) or (B, T, 3, H, W), oldest frame first, with T >= :attr:`span` (the window is the newest
    ``num_frames`` frames ``frame_stride`` apart; a shorter history is an error: at an episode start, repeat the
    first frame), or single images (B, H, W, 3) / (B, 3, H, W) (a static input). Any H, W: frames are resized on
    their device.
    """

    def __init__(self, encoder: Union[Encoder, str, Path], sensor: SensorLike = "universal", *,
                 background: Optional[torch.Tensor] = None, tune: str = "frozen", blocks: int = 1,
                 lora_rank: int = 8, lora_alpha: float = 8.0, pooling: str = "cls", autocast: bool = True):
        super().__init__()
        if tune not in TUNE_MODES:
            raise ValueError(f"tune={tune!r}; expected one of {', '.join(TUNE_MODES)}")
        if not isinstance(encoder, nn.Module):
            from .checkpoint import load_encoder  # here, not at the top: checkpoint imports the model zoo

            encoder = load_encoder(encoder)
        if not isinstance(encoder, (TouchEncoder, AnyTouch2Encoder)):
            raise TypeError(f"encoder is a {type(encoder).__name__}; expected a TouchEncoder or AnyTouch2Encoder "
                            "(anytouch.load_encoder)")
        family = encoder.family
        if pooling not in POOLINGS[family]:
            raise ValueError(f"pooling={pooling!r} for a {family} encoder; expected one of "
                             f"{', '.join(POOLINGS[family])}")
        check_family_sensor(sensor, family)
        self.encoder = encoder.eval().requires_grad_(False)
        self.sensor, self.tune, self.pooling, self.autocast = sensor, tune, pooling, autocast
        self.register_buffer("background", None if background is None else torch.as_tensor(background),
                             persistent=False)
        self.dim = encoder.width if pooling == "last" else encoder.proj.out_features
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

    @property
    def span(self) -> int:
        """The history length one window needs: ``(num_frames - 1) * frame_stride + 1`` frames."""
        return window_span(self.encoder)

    def window(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) history, newest last -> its newest ``num_frames`` frames ``frame_stride`` apart (oldest
        first). A history shorter than :attr:`span` is a ValueError. 4-D image batches pass through."""
        if frames.ndim == 4:
            return frames
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B,T,H,W,3) / (B,T,3,H,W) histories or (B,H,W,3) / (B,3,H,W) images, "
                             f"got shape {tuple(frames.shape)}")
        enc, t = self.encoder, frames.shape[1]
        if t < self.span:
            raise ValueError(f"a history of {t} frame(s) is too short: this {enc.family} encoder needs at least "
                             f"{self.span} (its window: {enc.num_frames} frames, {enc.frame_stride} apart); at an "
                             "episode start repeat the first frame, or pass a single (B,H,W,3) image")
        return frames[:, t - self.span::enc.frame_stride]

    def forward(self, frames: torch.Tensor, sensor: Optional[SensorLike] = None,
                background: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Features (B, D), float32, of raw frames (see the class docstring)."""
        background = self.background if background is None else background
        x = self.encoder.preprocess(self.window(frames), background=background)
        sensor = self.sensor if sensor is None else sensor
        check_family_sensor(sensor, self.encoder.family)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.tune != "frozen"), \
                torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast and x.is_cuda):
            return self.encoder(x, sensor, pooling=self.pooling).float()
