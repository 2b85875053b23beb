"""Sensor names and ids of AnyTouch (ICLR 2025), spec section 1.4.

Id -1 is the universal token; it indexes the last slot of the sensor table (slot 9 of 10).
"""
from __future__ import annotations

from typing import Iterable, Sequence, Union

import torch

SENSOR_IDS = {
    "gelsight": 0,
    "digit": 1,
    "gelslim": 2,
    "gelsight_mini": 3,
    "duragel": 4,
    "universal": -1,
}
UNIVERSAL = -1

SensorLike = Union[int, str, Sequence[Union[int, str]], torch.Tensor]


def sensor_id(name_or_id: Union[int, str]) -> int:
    """Map a sensor name (case-insensitive; '-', ' ' treated as '_') or an int id to an int id."""
    if isinstance(name_or_id, bool):
        raise TypeError(f"sensor must be an int or a name, got {name_or_id!r}")
    if isinstance(name_or_id, int):
        return int(name_or_id)
    if isinstance(name_or_id, str):
        key = name_or_id.strip().lower().replace("-", "_").replace(" ", "_")
        if key.lstrip("-").isdigit():
            return int(key)
        if key not in SENSOR_IDS:
            raise ValueError(
                f"unknown sensor {name_or_id!r}; expected one of: {', '.join(SENSOR_IDS)} (or an int id, -1 = universal)"
            )
        return SENSOR_IDS[key]
    raise TypeError(f"sensor must be an int or a name, got {type(name_or_id).__name__}")


def sensor_tensor(sensor: SensorLike, batch: int, num_slots: int, device=None) -> torch.Tensor:
    """Turn any accepted sensor spec into a (batch,) long tensor of slot indices in [0, num_slots).

    -1 (universal) maps to the last slot. Raises ValueError on out-of-range ids or a length mismatch.
    """
    if isinstance(sensor, torch.Tensor):
        ids = sensor.to(device=device, dtype=torch.long).reshape(-1)
        if ids.numel() == 1 and batch != 1:
            ids = ids.expand(batch)
    elif isinstance(sensor, (int, str)):
        ids = torch.full((batch,), sensor_id(sensor), dtype=torch.long, device=device)
    elif isinstance(sensor, Iterable):
        ids = torch.tensor([sensor_id(s) for s in sensor], dtype=torch.long, device=device)
    else:
        raise TypeError(f"unsupported sensor spec of type {type(sensor).__name__}")
    if ids.numel() != batch:
        raise ValueError(f"got {ids.numel()} sensor ids for a batch of {batch}")
    bad = (ids < -1) | (ids >= num_slots)
    if bool(bad.any()):
        raise ValueError(
            f"sensor id {int(ids[bad][0])} out of range; this model has {num_slots} sensor slots "
            f"(ids 0..{num_slots - 1}, -1 = universal)"
        )
    return torch.where(ids < 0, torch.full_like(ids, num_slots - 1), ids)
