"""A new sensor for a trained AnyTouch model: fine-tune one free sensor slot, everything else frozen.

AnyTouch (ICLR 2025) conditions the touch encoder on 5 learnable tokens per sensor
(docs/original/architecture.md#sensor-tokens); slots 0-4 are the paper's sensors, slot 9 is the universal token, slots
5-8 are never trained. For a sensor the model has not seen there are two paths:

1. use the universal token (``sensor="universal"`` / ``-1``), which pre-training taught to work for any sensor;
2. learn a slot of its own from a few hundred unlabelled frames (this module): the slot starts as a copy of the
   universal token and only its 5 tokens train, on the stage-1 MAE loss (docs/original/architecture.md#mae-losses; it
   needs no labels) with the encoder and the decoder frozen. Afterwards pass the slot id as the sensor (``sensor=5``).

A checkpoint written by ``anytouch adapt`` records the slots it trained (``config["adapt"]["slots"]``, read back by
:func:`recorded_slots`), so that the command line can refuse an untrained slot as a sensor id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Union

import torch

from .checkpoint import read_checkpoint
from .checkpoint.files import LoadedCheckpoint
from .models import as_touch_mae
from .sensors import FAMILY_SENSORS, SENSOR_IDS, sensor_id

__all__ = ["AdaptResult", "free_slots", "recorded_slots", "adapt_sensor_slot"]


@dataclass
class AdaptResult:
    slot: int  # the trained slot, use it as the sensor id
    init: str  # what the slot started from
    steps: int
    losses: List[float] = field(default_factory=list)  # training loss per step
    eval_before: float = float("nan")  # MAE loss on all frames with fixed masks, before ...
    eval_after: float = float("nan")  # ... and after training (same masks)


def free_slots(num_sensors: int = 10, family: str = "anytouch") -> List[int]:
    """Slots no sensor of ``family`` was trained on (the universal token, the last slot, excluded): 5..8 for the
    AnyTouch paper's table, 6..18 for AnyTouch 2's."""
    used = {SENSOR_IDS[n] % num_sensors for n in FAMILY_SENSORS[family] + ("universal",)}
    return [s for s in range(num_sensors - 1) if s not in used]


def recorded_slots(checkpoint: Union[str, Path, LoadedCheckpoint]) -> List[int]:
    """The sensor slots a checkpoint (a path, or one already read) records as adapted: ``config["adapt"]["slots"]``
    (and the older single ``config["adapt"]["slot"]``) of our checkpoints and hub folders, as ``anytouch adapt``
    writes them; [] for other formats."""
    loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else read_checkpoint(checkpoint)
    if loaded.format not in ("ours", "hub"):
        return []
    record = (loaded.content.get("config") or {}).get("adapt") or {}
    return sorted(set(record.get("slots", [])) | ({record["slot"]} if "slot" in record else set()))


def _slot(slot: Optional[int], num_sensors: int) -> int:
    free = free_slots(num_sensors)
    if slot is None:
        if not free:
            raise ValueError(f"this model has no free sensor slot ({num_sensors} slots, all named or universal)")
        return free[0]
    if slot not in free:
        raise ValueError(f"slot {slot} is not free; choose one of {free} (0-4 are the paper's sensors, "
                         f"{num_sensors - 1} the universal token)")
    return slot


def _mae_loss(mae, x: torch.Tensor, slot: int, mask_ratio: float, noise: Optional[torch.Tensor]) -> torch.Tensor:
    return mae(x, slot, mask_ratio=mask_ratio, noise=noise)["loss"]


@torch.no_grad()
def _eval(mae, frames: torch.Tensor, slot: int, mask_ratio: float, batch_size: int, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    dev = mae.encoder.sensor_tokens.device
    total = 0.0
    for i in range(0, len(frames), batch_size):
        x = frames[i:i + batch_size].to(dev)
        noise = torch.rand(len(x), mae.num_patches, generator=g).to(dev)
        total += float(_mae_loss(mae, x, slot, mask_ratio, noise)) * len(x)
    return total / len(frames)


def adapt_sensor_slot(model, frames: torch.Tensor, slot: Optional[int] = None, init: Union[int, str] = "universal",
                      steps: int = 200, lr: float = 1e-3, batch_size: int = 16, mask_ratio: float = 0.75,
                      seed: int = 0, log: Optional[Callable[[str], None]] = None, log_every: int = 50) -> AdaptResult:
    """Train one sensor slot of ``model`` in place on frames of a new sensor.

    Args:
        model: an AnyTouchModel or TouchMAE with its MAE decoder (any released or trained checkpoint).
        frames: ImageNet-normalised frames (N, 3, H, W) (image objective) or 4-frame clips (N, 4, 3, H, W) (video
            objective: 3 frames in, the 4th predicted), at the model's input size.
        slot: the slot to train (default: the first free one, 5).
        init: the slot's starting value: ``"universal"`` (default), a sensor name/id to copy, or ``"keep"``.
        steps, lr, batch_size, mask_ratio: Adam (no weight decay) on the slot's tokens; random flips and fresh
            masks each step.
        seed: seeds batch order, flips and masks.
        log: called with a progress line every ``log_every`` steps.
    Returns:
        :class:`AdaptResult`; the MAE loss on all frames with fixed masks before and after shows the gain.
    """
    mae = as_touch_mae(model)
    enc = mae.encoder
    slot = _slot(slot, enc.num_sensors)
    if frames.ndim not in (4, 5) or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, 3, H, W) or (N, 4, 3, H, W) tensor, "
                         f"got {tuple(frames.shape)}")
    table = enc.sensor_tokens
    with torch.no_grad():
        if init != "keep":
            table[slot] = table[sensor_id(init) % enc.num_sensors]
    was_training = mae.training
    flags = {n: p.requires_grad for n, p in mae.named_parameters()}
    mae.eval()  # no dropout anywhere; eval keeps any future stochastic layers off
    mae.requires_grad_(False)
    table.requires_grad_(True)
    row = torch.zeros(enc.num_sensors, 1, 1, device=table.device, dtype=table.dtype)
    row[slot] = 1
    hook = table.register_hook(lambda g: g * row)  # only the chosen slot receives gradient
    # plain Adam without weight decay: rows with zero gradient get exactly zero update
    opt = torch.optim.Adam([table], lr=lr)
    result = AdaptResult(slot=slot, init=str(init), steps=steps)
    eval_seed = seed + 1
    try:
        result.eval_before = _eval(mae, frames, slot, mask_ratio, batch_size, eval_seed)
        g = torch.Generator().manual_seed(seed)
        dev = table.device
        for step in range(steps):
            idx = torch.randint(len(frames), (min(batch_size, len(frames)),), generator=g)
            x = frames[idx].to(dev)
            if torch.rand((), generator=g) < 0.5:
                x = x.flip(-1)
            if torch.rand((), generator=g) < 0.5:
                x = x.flip(-2)
            noise = torch.rand(len(x), mae.num_patches, generator=g).to(dev)
            loss = _mae_loss(mae, x, slot, mask_ratio, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            result.losses.append(float(loss.detach()))
            if log is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
                recent = result.losses[-log_every:]
                log(f"adapt slot {slot}: step {step + 1}/{steps} loss {sum(recent) / len(recent):.4f}")
        result.eval_after = _eval(mae, frames, slot, mask_ratio, batch_size, eval_seed)
    finally:
        hook.remove()
        for n, p in mae.named_parameters():
            p.requires_grad_(flags[n])
        mae.train(was_training)
    return result
