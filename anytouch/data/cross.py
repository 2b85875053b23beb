"""Cross-sensor matching samples of AnyTouch stage 2 (docs/original/recipe.md#stage-2-cross-sensor-matching).

Anchors are TacQuad frames (or 3-frame clips) with the first 3 frames of each contact range skipped. The positive is
a uniformly drawn entry of the *same object* taken with a *different sensor* (any frame: coarse spatial alignment).
The negative is uniformly drawn from the whole pool (TacQuad plus every non-TacQuad source) *excluding the anchor's
object*; its sensor may equal the anchor's.

Differences from the original, which draws by rejection: objects seen by a single sensor are left out of the anchors
up front (with a warning), instead of looping forever (docs/original/defects.md#8-endless-positive-sampling), and the
negative is drawn directly over the pool minus the anchor object's entries, so both draws take constant time and have
the original's distributions. Draws are a pure function of ``(seed, epoch, index)`` (``numpy.random.SeedSequence``), so
DataLoader workers, DDP ranks and resumed runs see the same triplets; call :meth:`CrossSensorDataset.set_epoch` to vary
them per epoch.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from torch.utils.data import ConcatDataset, Dataset

from .io import DataError

__all__ = ["CrossSensorDataset"]


class CrossSensorDataset(Dataset):
    """Triplets ``anchor, positive, negative`` (uint8 (3,H,W) or (3,3,H,W)) with ``*_aug`` parameters and
    ``*_sensor`` ints.

    Args:
        anchors: a TacQuad frame dataset of a cross kind. Besides ``__getitem__ -> {"touch", "sensor", ...}`` it must
            expose ``object_ids`` and ``sensor_ids`` (one int per entry).
        pool: negative-only datasets (other sources, same clip kind) yielding ``{"touch", "sensor", ...}``.
        seed: base seed of the draws.
    Raises:
        DataError: no anchor possible (no object has frames from two sensors) or no negative possible (a single
            TacQuad object and an empty pool).
    """

    def __init__(self, anchors: Dataset, pool: Sequence[Dataset] = (), seed: int = 0):
        objects = np.asarray(anchors.object_ids, dtype=np.int64)
        sensors = np.asarray(anchors.sensor_ids, dtype=np.int64)
        if len(objects) != len(anchors) or len(sensors) != len(anchors):
            raise ValueError("anchors.object_ids / sensor_ids must have one entry per sample")
        self.anchors, self.seed, self.epoch = anchors, int(seed), 0
        self.pool = ConcatDataset(list(pool)) if pool else None
        self.pool_sizes = [len(p) for p in pool]
        # entries sorted by (object, sensor): each object is one block, each (object, sensor) a sub-block
        self.order = np.lexsort((sensors, objects))
        obj_sorted, sen_sorted = objects[self.order], sensors[self.order]
        self.obj_start = np.searchsorted(obj_sorted, objects, side="left")
        self.obj_end = np.searchsorted(obj_sorted, objects, side="right")
        pair_sorted = obj_sorted * (sensors.max() + 2) + (sen_sorted + 1)
        pair = objects * (sensors.max() + 2) + (sensors + 1)
        self.sen_start = np.searchsorted(pair_sorted, pair, side="left")
        self.sen_end = np.searchsorted(pair_sorted, pair, side="right")
        multi = (self.obj_end - self.obj_start) > (self.sen_end - self.sen_start)
        self.anchor_index = np.flatnonzero(multi)
        single = np.unique(objects[~multi])
        self.excluded_objects = int(len(single))
        if self.excluded_objects:
            warnings.warn(f"cross-sensor: {self.excluded_objects} TacQuad object(s) have frames from a single sensor; "
                          f"their {int((~multi).sum())} entries are used as negatives only, never as anchors")
        if len(self.anchor_index) == 0:
            raise DataError(f"cross-sensor: no TacQuad object has frames from two sensors "
                            f"({len(np.unique(objects))} objects, {len(objects)} entries); no anchor possible")
        if len(np.unique(objects)) == 1 and sum(self.pool_sizes) == 0:
            # the negative must come from another object: another TacQuad object or a non-TacQuad source
            raise DataError(f"cross-sensor: all {len(objects)} TacQuad entries belong to one object and the "
                            f"negative pool is empty; no negative possible (expected at least two TacQuad objects "
                            f"or another enabled source in data.repeats)")

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch``. The training engine's ``EpochSeeded`` wrapper calls it with every sample's
        epoch inside the loading process, so persistent DataLoader workers follow the epochs too."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.anchor_index)

    def draw(self, index: int):
        """The (anchor, positive, negative) entry ids of sample ``index``; negative ids >= len(anchors) are pool
        entries (``id - len(anchors)``)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))
        a = int(self.anchor_index[index])
        s0, s1 = int(self.obj_start[a]), int(self.obj_end[a])
        p0, p1 = int(self.sen_start[a]), int(self.sen_end[a])
        # positive: uniform over the object's block minus the anchor sensor's sub-block
        r = int(rng.integers(0, (s1 - s0) - (p1 - p0)))
        pos = int(self.order[s0 + r if s0 + r < p0 else s0 + r + (p1 - p0)])
        # negative: uniform over [TacQuad entries without this object] + pool
        n_tq, n_pool = len(self.order), sum(self.pool_sizes)
        r = int(rng.integers(0, n_tq - (s1 - s0) + n_pool))
        if r < s0:
            neg = int(self.order[r])
        elif r < n_tq - (s1 - s0):
            neg = int(self.order[r + (s1 - s0)])
        else:
            neg = n_tq + r - (n_tq - (s1 - s0))
        return a, pos, neg

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"cross-sensor: index {index} out of range for {len(self)} anchors")
        a, p, n = self.draw(index)
        anchor, positive = self.anchors[a], self.anchors[p]
        n_tq = len(self.anchors)
        negative = self.anchors[n] if n < n_tq else self.pool[n - n_tq]
        return {"anchor": anchor["touch"], "positive": positive["touch"], "negative": negative["touch"],
                "anchor_aug": anchor["touch_aug"], "positive_aug": positive["touch_aug"],
                "negative_aug": negative["touch_aug"], "anchor_sensor": int(anchor["sensor"]), "positive_sensor": int(positive["sensor"]),
                "negative_sensor": int(negative["sensor"])}
