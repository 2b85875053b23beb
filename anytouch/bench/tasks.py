"""The benchmark tasks and the samples they yield: the contract between the task sets and the benchmark runner.

Sample contract. Every task set yields raw, un-normalised samples, so that each encoder applies its own input
contract (resizing, statistics, background subtraction, frame window)::

    frames          uint8 (T, H, W, 3), RGB as stored, oldest first, T >= 1: the task's window. Force / slip:
                    the current frame and its predecessors at the task's stride; pose: the two frames (t - 5, t);
                    Cloth: the last frames of a squeeze; TAG / OF: one frame; Feel: the A and B fingers' frames
                    (T = 2 here means two sensors at one instant, not time: ``BenchTask.views``).
    background      uint8 (H, W, 3): the sensor's no-contact frame, or all zero with has_background False.
    has_background  bool
    sensor          str: gelsight, digit, gelsight_mini, ... (anytouch.sensors names; OF renderings: universal)
    target          long scalar (classification, binary) or float32 (K,) (regression, SI units: N for force;
                    m, m, rad for pose)
    source          str: the task set
    group           str: the unit the sample belongs to (trajectory, bag, garment, recording folder, object), for
                    per-group metrics (``anytouch.bench.metrics``); samples of a group are in time order.

Frames of one set share a size (the release's, or ``image_size`` for the synthetic twins). An encoder needing a
shorter window takes frames from this one (e.g. the first and last); a longer one is built with ``frames=`` /
``stride=`` options.

Splits are frozen: ``train``, ``val``, ``test``. The validation part is either in the release's own folders
(force, slip: a batch folder the release does not test on) or carved out of ``train`` with a fixed seed at the unit
the test generalises over (``SplitRule``). Data budgets (``BUDGETS``) take a seeded subset of ``train``,
stratified by class for classification and binary tasks; the subsets of one seed are nested (1 % in 10 % in
33 % in 100 %).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import build_dataset
from ..data.bench_base import bench_sample
from ..data.cloth_textile import VAL_FRACTION as CLOTH_VAL_FRACTION, VAL_SEED as CLOTH_VAL_SEED
from ..data.io import read_image
from ..data.pose import VAL_FRACTION as POSE_VAL_FRACTION, VAL_SEED as POSE_VAL_SEED
from ..data.synthetic import SyntheticConfig
from ..sensors import SENSOR_IDS
from .metrics import METRICS

__all__ = ["SplitRule", "BenchTask", "TASKS", "BUDGETS", "get_task", "build_task_dataset", "budget_indices"]

BUDGETS = (1.0, 0.33, 0.1, 0.01)
KINDS = ("classification", "binary", "regression")
_SENSOR_NAMES = {v: k for k, v in SENSOR_IDS.items()}


@dataclass(frozen=True)
class SplitRule:
    """Where a task's validation split comes from: ``val`` = ``release`` (folders of the release, listed by the
    loader) or ``carved`` (``fraction`` of the training ``unit`` s, permuted with ``seed``)."""

    val: str
    unit: str
    fraction: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class BenchTask:
    """One benchmark task.

    Attributes:
        name: the task name (``--tasks``).
        dataset: its registered dataset (``anytouch.data.registry``).
        kind: ``classification`` | ``binary`` | ``regression``.
        num_outputs: classes (classification), 1 (binary: a logit) or the regression dimension.
        metrics: names in ``anytouch.bench.metrics.METRICS``; the first is the primary one (model selection).
        frames, stride: the window of a sample.
        splits: how its validation split is made.
        options: extra builder options (e.g. the force sensor).
        views: how many of a sample's frames are separate sensors seen at one instant rather than time (Feel: 2,
            fingers A and B). Each view is encoded alone as a single image under the encoder's own contract, and
            the views' tokens are concatenated along the token axis and their pooled features along the feature
            axis, as the original Feel probe concatenates the A and B features (``anytouch.bench.features``).

    Regression heads standardise their targets with the training subset's own mean and std (``protocol``), so a
    task declares no target scale.
    """

    name: str
    dataset: str
    kind: str
    num_outputs: int
    metrics: Tuple[str, ...]
    frames: int
    stride: int
    splits: SplitRule
    options: Tuple[Tuple[str, object], ...] = ()
    views: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind {self.kind!r}; expected one of {KINDS}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if not self.metrics or unknown:
            raise ValueError(f"task {self.name}: metrics {self.metrics}; expected names among {tuple(METRICS)}")
        if self.views < 1 or (self.views > 1 and self.views != self.frames):
            raise ValueError(f"task {self.name}: views={self.views}; expected 1 or the sample's frame count "
                             f"({self.frames})")

    @property
    def primary(self) -> str:
        return self.metrics[0]

    @property
    def higher_is_better(self) -> bool:
        """Direction of the primary metric."""
        return METRICS[self.primary].higher_is_better


_CLASS = ("accuracy", "balanced_accuracy")
_FORCE = ("force_rmse", "force_rmse_x", "force_rmse_y", "force_rmse_z", "force_mae", "sparsh_force_mae_mN",
          "at2_force_rmse_sum_mN")
_POSE = ("pose_trans_rmse", "pose_rot_rmse", "pose_trans_mae", "pose_rot_mae", "t3_pose_rmse_mm", "sparsh_pose_acc",
         "sparsh_pose_bag_acc")
TASKS: Tuple[BenchTask, ...] = (
    BenchTask("tag_material", "tag_material", "classification", 20, _CLASS, 1, 1,
              SplitRule("carved", "recording folder", 0.1)),
    BenchTask("tag_roughness", "tag_roughness", "binary", 1, _CLASS, 1, 1,
              SplitRule("carved", "recording folder", 0.1)),
    BenchTask("tag_hardness", "tag_hardness", "binary", 1, _CLASS, 1, 1,
              SplitRule("carved", "recording folder", 0.1)),
    BenchTask("feel", "feel", "binary", 1, _CLASS + ("group_accuracy",), 2, 1, SplitRule("carved", "object", 0.1),
              views=2),
    BenchTask("of1", "of1", "classification", 7, _CLASS, 1, 1, SplitRule("carved", "sample", 0.1)),
    BenchTask("of2", "of2", "classification", 7, _CLASS, 1, 1, SplitRule("carved", "sample", 0.1)),
    BenchTask("cloth_textile", "cloth_textile", "classification", 20, _CLASS, 4, 2,
              SplitRule("carved", "garment", CLOTH_VAL_FRACTION, CLOTH_VAL_SEED)),
    BenchTask("force", "force", "regression", 3, _FORCE, 2, 5, SplitRule("release", "batch folder"),
              (("sensor", "digit"),)),
    BenchTask("slip", "slip", "binary", 1, ("f1", "balanced_accuracy", "accuracy", "sparsh_slip_f1"), 2, 5,
              SplitRule("release", "batch folder"), (("sensor", "digit"),)),
    BenchTask("pose", "pose", "regression", 3, _POSE, 2, 5,
              SplitRule("carved", "bag", POSE_VAL_FRACTION, POSE_VAL_SEED)),
)
_PROBE_SETS = ("tag_material", "tag_roughness", "tag_hardness", "feel", "of1", "of2")


def get_task(name: Union[str, BenchTask]) -> BenchTask:
    """The task of :data:`TASKS` called ``name`` (a BenchTask is returned as is)."""
    if isinstance(name, BenchTask):
        return name
    for t in TASKS:
        if t.name == name:
            return t
    raise ValueError(f"unknown task {name!r}; expected one of {', '.join(t.name for t in TASKS)}")


def budget_indices(n: int, budget: float, seed: int, labels: Optional[Sequence[int]] = None) -> List[int]:
    """Indices of the ``budget`` share of ``n`` training samples, seeded: per class (``labels``) or overall, the
    first ``ceil(budget * count)`` (at least 1) of a ``seed`` permutation, so one seed's subsets are nested."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"budget={budget}; expected 0 < budget <= 1 (e.g. one of {BUDGETS})")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        return sorted(order[:max(1, math.ceil(budget * n - 1e-9))].tolist())
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} samples")
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep += members[rng.permutation(len(members))][:max(1, math.ceil(budget * len(members) - 1e-9))].tolist()
    return sorted(keep)


class _ProbeAsBench(Dataset):
    """A probe set (real: its image paths; synthetic: its raw renders) as raw bench samples."""

    def __init__(self, probe, name: str):
        self.probe, self.name = probe, name
        self.sensor = _SENSOR_NAMES.get(int(probe.sensor), str(probe.sensor))

    def __len__(self) -> int:
        return len(self.probe)

    def _raw(self, i: int):
        if hasattr(self.probe, "items"):
            paths, label = self.probe.items[i]
            return torch.stack([read_image(p) for p in paths]), label, os.path.dirname(paths[0])
        raw, label = self.probe.raw(i)
        return torch.from_numpy(raw).reshape(-1, *raw.shape[-3:]), label, f"{self.probe.split}{i}"

    def __getitem__(self, i: int) -> dict:
        frames, label, group = self._raw(i)
        return bench_sample(frames.permute(0, 2, 3, 1).numpy(), None, self.sensor, int(label), self.name, group)

    def labels(self) -> List[int]:
        if hasattr(self.probe, "items"):
            return [int(label) for _, label in self.probe.items]
        return [int(self.probe.raw(i)[1]) for i in range(len(self.probe))]


class _Subset(Dataset):
    def __init__(self, base, indices: Sequence[int]):
        self.base, self.indices = base, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.base[self.indices[i]]

    def labels(self) -> Optional[List[int]]:
        full = self.base.labels()
        return None if full is None else [full[i] for i in self.indices]


def build_task_dataset(task: Union[str, BenchTask], split: str, root: Optional[str] = None, synthetic: bool = False,
                       budget: float = 1.0, seed: int = 0, num_samples: int = 256, image_size: int = 64,
                       **options) -> Dataset:
    """The ``split`` (``train`` | ``val`` | ``test``) of ``task`` as raw bench samples (module docstring).

    Args:
        root: the data root (default ``$ANYTOUCH_DATA_ROOT`` or ``tactile_datasets``); ignored when ``synthetic``.
        synthetic: use the task's synthetic twin: ``num_samples`` training samples (val a quarter, test half, at
            least 8; the probe twins carve val out of train) of ``image_size`` pixels.
        budget: share of ``train`` kept (:func:`budget_indices`, seeded by ``seed``); only for ``train``.
        options: builder options overriding the task's (e.g. ``sensor="gelsight_mini"``, ``frames``, ``stride``).
    Returns:
        a Dataset of sample dicts with ``labels()`` (None for regression).
    """
    task = get_task(task)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split {split!r}; expected 'train', 'val' or 'test'")
    if budget != 1.0 and split != "train":
        raise ValueError(f"budget={budget} applies to split 'train' only, got split {split!r}")
    opts = dict(task.options, **options)
    if task.dataset in _PROBE_SETS:
        if synthetic:
            cfg = SyntheticConfig(render_size=image_size, seed=0)
            probe = build_dataset(task.dataset, split, synthetic=cfg, num_samples=num_samples,
                                  val_fraction=task.splits.fraction, val_seed=task.splits.seed, image_size=image_size)
        else:
            probe = build_dataset(task.dataset, split, root=root, val_fraction=task.splits.fraction,
                                  val_seed=task.splits.seed, **opts)
        ds = _ProbeAsBench(probe, task.name)
    else:
        opts = dict(dict(frames=task.frames, stride=task.stride), **opts)
        if synthetic:
            n = {"train": num_samples, "val": max(8, num_samples // 4), "test": max(8, num_samples // 2)}[split]
            ds = build_dataset(task.dataset, split, synthetic=True, num_samples=n, image_size=image_size, **opts)
        else:
            ds = build_dataset(task.dataset, split, root=root, **opts)
    if budget == 1.0:
        return ds
    labels = ds.labels() if task.kind != "regression" else None
    return _Subset(ds, budget_indices(len(ds), budget, seed, labels))
