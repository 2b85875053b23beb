"""Sensor names and ids of AnyTouch (ICLR 2025) and AnyTouch 2 (ICLR 2026).

Both families share the ids 0-4; AnyTouch 2 adds ``dm`` (5). Id -1 is the universal token; it indexes the last
slot of the model's sensor table, so the slot it lands in depends on the family (:data:`SENSOR_TABLE_SIZE`): slot 9
of 10 for AnyTouch 1, slot 19 of 20 for AnyTouch 2.
"""
from __future__ import annotations

import numbers
from typing import Iterable, Sequence, Union

import numpy as np
import torch

SENSOR_IDS = {
    "gelsight": 0,
    "digit": 1,
    "gelslim": 2,
    "gelsight_mini": 3,
    "duragel": 4,
    "dm": 5,  # new in AnyTouch 2
    "universal": -1,
}
UNIVERSAL = -1
# rows of the sensor table per model family; the universal token is the last row
SENSOR_TABLE_SIZE = {"anytouch": 10, "anytouch2": 20}
# the named sensors each family was trained on
FAMILY_SENSORS = {
    "anytouch": ("gelsight", "digit", "gelslim", "gelsight_mini", "duragel"),
    "anytouch2": ("gelsight", "digit", "gelslim", "gelsight_mini", "duragel", "dm"),
}

SensorLike = Union[int, np.integer, str, Sequence[Union[int, str]], np.ndarray, torch.Tensor]


def _integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _not_integer(value, what: str) -> TypeError:
    return TypeError(
        f"sensor ids must be integers, got {what}; a fractional id is not rounded or truncated, pass an int id "
        f"(-1 = universal) or a name ({', '.join(SENSOR_IDS)})"
    )


def sensor_id(name_or_id: Union[int, np.integer, str, torch.Tensor]) -> int:
    """Map a sensor name (case-insensitive; '-', ' ' treated as '_') or an integer id to an int id.

    Integer ids may be Python ints, numpy integer scalars or 0-d integer tensors; floats and bools are rejected
    with a TypeError.
    """
    if isinstance(name_or_id, (bool, np.bool_)):
        raise TypeError(f"sensor must be an int or a name, got {name_or_id!r}")
    if isinstance(name_or_id, numbers.Integral):  # int, np.int64, ...
        return int(name_or_id)
    if isinstance(name_or_id, torch.Tensor) and name_or_id.ndim == 0:
        if not _integer_dtype(name_or_id.dtype):
            raise _not_integer(name_or_id, f"a {name_or_id.dtype} tensor ({name_or_id.item()!r})")
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
    if isinstance(name_or_id, numbers.Number):  # float, np.float32, complex
        raise _not_integer(name_or_id, f"{name_or_id!r} ({type(name_or_id).__name__})")
    raise TypeError(f"sensor must be an int or a name, got {type(name_or_id).__name__}")


def sensor_tensor(sensor: SensorLike, batch: int, num_slots: int, device=None) -> torch.Tensor:
    """Turn any accepted sensor spec into a (batch,) long tensor of slot indices in [0, num_slots).

    ``sensor``: a name or integer id for the whole batch, or one per sample (a list of names / ids, an integer
    numpy array or tensor; a single-element one is broadcast). -1 (universal) maps to the last slot. Raises
    TypeError on floating-point or bool ids, ValueError on out-of-range ids or a length mismatch. The range check
    runs where the ids are: free for host ids (what the training loops pass), one device sync for ids already on an
    accelerator.
    """
    if isinstance(sensor, np.ndarray):
        if sensor.dtype.kind in "iu":
            sensor = torch.from_numpy(sensor.astype(np.int64))
        elif sensor.dtype.kind not in "USO":  # strings / objects are handled element by element below
            raise _not_integer(sensor, f"a numpy array of dtype {sensor.dtype}")
    if isinstance(sensor, torch.Tensor):
        if not _integer_dtype(sensor.dtype):
            raise _not_integer(sensor, f"a tensor of dtype {sensor.dtype}")
        ids = sensor.to(dtype=torch.long).reshape(-1)  # checked where it is: no device sync for host ids
        if ids.numel() == 1 and batch != 1:
            ids = ids.expand(batch)
    elif isinstance(sensor, (str, numbers.Number)):
        ids = torch.full((batch,), sensor_id(sensor), dtype=torch.long)
    elif isinstance(sensor, Iterable):
        ids = torch.tensor([sensor_id(s) for s in sensor], dtype=torch.long)
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
    return torch.where(ids < 0, torch.full_like(ids, num_slots - 1), ids).to(device, non_blocking=True)


def sensor_slot(name_or_id: Union[int, np.integer, str, torch.Tensor], family: str = "anytouch") -> int:
    """The sensor-table row a sensor name or id selects in a model of ``family`` ("anytouch" or "anytouch2").

    ``-1`` / ``"universal"`` is the last row: 9 for AnyTouch 1, 19 for AnyTouch 2. Out-of-range ids raise ValueError.
    """
    if family not in SENSOR_TABLE_SIZE:
        raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(SENSOR_TABLE_SIZE)}")
    return int(sensor_tensor(sensor_id(name_or_id), 1, SENSOR_TABLE_SIZE[family])[0])
