"""Benchmark metrics, each defined once: name, formula, unit and direction.

Every metric is ``fn(outputs, targets, groups=None) -> float`` on a whole split (never averaged over batches):

* classification: ``outputs`` (N, C) class scores (argmax is the prediction), ``targets`` (N,) ints;
* binary: ``outputs`` (N,) or (N, 1) logits of class 1 (prediction: logit > 0, P = sigmoid) or (N, 2) scores
  (prediction: argmax, P = softmax[:, 1]), ``targets`` (N,) 0 / 1;
* regression: ``outputs`` and ``targets`` (N, K) in SI units (force: N, pose: m, m, rad); ``e = outputs -
  targets``; targets are taken as given (never clipped).

``groups`` (N,) names each sample's unit (trajectory, bag, file) in sample order, for the per-group variants.
Metrics named after an upstream benchmark (``sparsh_*``, ``at2_*``, ``t3_*``) reproduce that benchmark's own
definition so that published numbers can be set next to ours; their docstrings say where they differ from what
their name suggests. :data:`METRICS` lists them all; :func:`compute` evaluates one by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

__all__ = ["Metric", "METRICS", "compute", "POSE_TRANSLATION_BINS_M", "POSE_YAW_BINS_RAD", "SPARSH_SLIP_THRESHOLD"]

SPARSH_SLIP_THRESHOLD = 0.4  # P(slip) above which Sparsh's slip test calls a frame slipping
# Sparsh's pose probe classifies each of tx, ty, yaw into 11 bins with these thresholds (translation in the
# release's unit, taken as mm, here in m; yaw in degrees, here in rad)
POSE_TRANSLATION_BINS_M = tuple(sorted(s * t * 1e-3 for s in (-1, 1) for t in (0.1, 0.5, 1, 2, 5)))
POSE_YAW_BINS_RAD = tuple(sorted(math.radians(s * t) for s in (-1, 1) for t in (0.03, 0.2, 0.5, 1, 2)))


@dataclass(frozen=True)
class Metric:
    """One metric: ``fn(outputs, targets, groups)``, whether higher is better, its unit and formula, and the
    upstream benchmark whose definition it reproduces (empty: ours)."""

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    unit: str
    formula: str
    upstream: str = ""


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels(outputs: np.ndarray) -> np.ndarray:
    """Predicted class of classification / binary outputs (see the module docstring)."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return outputs.argmax(1)
    return (outputs.reshape(len(outputs)) > 0).astype(np.int64)


def _p_positive(outputs: np.ndarray) -> np.ndarray:
    if outputs.ndim == 2 and outputs.shape[1] == 2:
        z = outputs - outputs.max(1, keepdims=True)
        return np.exp(z[:, 1]) / np.exp(z).sum(1)
    return 1.0 / (1.0 + np.exp(-outputs.reshape(len(outputs)).astype(np.float64)))


def accuracy(outputs, targets, groups=None) -> float:
    """Top-1 accuracy: mean_i [pred_i == y_i]."""
    return float((_labels(outputs) == targets.reshape(-1)).mean())


def balanced_accuracy(outputs, targets, groups=None) -> float:
    """Mean over the classes present in ``targets`` of that class's recall: mean_c mean_{i: y_i = c} [pred_i = c]
    (classes absent from the split do not count)."""
    pred, y = _labels(outputs), targets.reshape(-1)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def _f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp, fp, fn = ((pred == 1) & (y == 1)).sum(), ((pred == 1) & (y == 0)).sum(), ((pred == 0) & (y == 1)).sum()
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def f1(outputs, targets, groups=None) -> float:
    """F1 of class 1 (slip) at the plain prediction: 2 TP / (2 TP + FP + FN) (0 when there is no positive at all)."""
    return _f1(_labels(outputs), targets.reshape(-1))


def group_accuracy(outputs, targets, groups=None) -> float:
    """Mean over groups of the per-group accuracy (Sparsh's grasp / textile "avg acc" over test files)."""
    hits = _labels(outputs) == targets.reshape(-1)
    g = np.asarray(_need_groups(groups, len(hits)))
    return float(np.mean([hits[g == k].mean() for k in dict.fromkeys(g.tolist())]))


def _need_groups(groups, n: int) -> Sequence:
    if groups is None or len(groups) != n:
        raise ValueError(f"this metric needs one group name per sample ({n}); got "
                         f"{'none' if groups is None else len(groups)}")
    return list(groups)


def sparsh_slip_f1(outputs, targets, groups=None) -> float:
    """Sparsh's slip F1: per trajectory (``groups``, samples in time order), slip_t = 1 iff P(slip) > 0.4 at t, t-1
    and t-2 (0 for a trajectory's first two samples); the first and the last trajectory are left out; then F1 of
    class 1."""
    p, y = _p_positive(outputs), targets.reshape(-1)
    g = np.asarray(_need_groups(groups, len(y)))
    order = list(dict.fromkeys(g.tolist()))
    preds, ys = [], []
    for k in order[1:-1]:
        b = p[g == k] > SPARSH_SLIP_THRESHOLD
        smooth = np.zeros_like(b)
        smooth[2:] = b[2:] & b[1:-1] & b[:-2]
        preds.append(smooth.astype(np.int64))
        ys.append(y[g == k])
    if not preds:
        raise ValueError(f"sparsh_slip_f1 needs at least 3 trajectories (it leaves out the first and last); got "
                         f"{len(order)}")
    return _f1(np.concatenate(preds), np.concatenate(ys))


def _err(outputs, targets) -> np.ndarray:
    o, t = outputs.astype(np.float64), targets.astype(np.float64)
    if o.shape != t.shape:
        raise ValueError(f"outputs {o.shape} and targets {t.shape} differ; expected both (N, K)")
    return o - t


def force_rmse(outputs, targets, groups=None) -> float:
    """Overall force RMSE in N: sqrt(mean_{i,k} e_ik^2) over samples i and axes k = x, y, z."""
    return float(np.sqrt((_err(outputs, targets) ** 2).mean()))


def _axis_rmse(k: int) -> Callable[..., float]:
    def rmse(outputs, targets, groups=None) -> float:
        return float(np.sqrt((_err(outputs, targets)[:, k] ** 2).mean()))

    rmse.__doc__ = f"RMSE of axis {'xyz'[k]} in N: sqrt(mean_i e_i{'xyz'[k]}^2)."
    return rmse


def force_mae(outputs, targets, groups=None) -> float:
    """Force mean absolute error in N: mean_{i,k} |e_ik|."""
    return float(np.abs(_err(outputs, targets)).mean())


def sparsh_force_mae_mn(outputs, targets, groups=None) -> float:
    """Sparsh's force "RMSE" (mN): 1000 * mean_i mean_k sqrt(e_ik^2) = 1000 * mean |e|, a mean absolute error.
    Upstream also clips the ground truth to +-its scale vector; clip ``targets`` first to reproduce that."""
    return 1000.0 * force_mae(outputs, targets)


def at2_force_rmse_sum_mn(outputs, targets, groups=None) -> float:
    """AnyTouch 2's force "RMSE" (mN, also its ToucHD and Sparsh-in-AnyTouch-2 numbers): 1000 * sum_k
    sqrt(mean_i e_ik^2), the sum of the per-axis RMSEs."""
    e = _err(outputs, targets)
    return float(1000.0 * np.sqrt((e ** 2).mean(0)).sum())


def pose_trans_rmse(outputs, targets, groups=None) -> float:
    """Pose translation RMSE in m: sqrt(mean_i (e_ix^2 + e_iy^2)) (outputs 0, 1)."""
    return float(np.sqrt((_err(outputs, targets)[:, :2] ** 2).sum(1).mean()))


def pose_trans_mae(outputs, targets, groups=None) -> float:
    """Pose translation error in m: mean_i sqrt(e_ix^2 + e_iy^2) (mean Euclidean distance)."""
    return float(np.sqrt((_err(outputs, targets)[:, :2] ** 2).sum(1)).mean())


def _angle_err(outputs, targets) -> np.ndarray:
    e = _err(outputs, targets)[:, 2]
    return (e + math.pi) % (2 * math.pi) - math.pi  # wrapped to [-pi, pi)


def pose_rot_rmse(outputs, targets, groups=None) -> float:
    """Pose rotation RMSE in rad: sqrt(mean_i wrap(e_itheta)^2), wrap to [-pi, pi)."""
    return float(np.sqrt((_angle_err(outputs, targets) ** 2).mean()))


def pose_rot_mae(outputs, targets, groups=None) -> float:
    """Pose rotation error in rad: mean_i |wrap(e_itheta)|."""
    return float(np.abs(_angle_err(outputs, targets)).mean())


def t3_pose_rmse_mm(outputs, targets, groups=None) -> float:
    """T3's pose "RMSE" in mm, on the whole split (T3 averages it over 50 random batches): 1000 * sqrt(mean_i
    ||e_i,xy||^2)."""
    return 1000.0 * pose_trans_rmse(outputs, targets)


def _pose_bins(x: np.ndarray) -> np.ndarray:
    return np.stack([np.digitize(x[:, 0], POSE_TRANSLATION_BINS_M), np.digitize(x[:, 1], POSE_TRANSLATION_BINS_M),
                     np.digitize(x[:, 2], POSE_YAW_BINS_RAD)], 1)


def sparsh_pose_acc(outputs, targets, groups=None) -> float:
    """Sparsh's pose accuracy from regressed poses: each of dx, dy, dtheta binned into Sparsh's 11 classes
    (:data:`POSE_TRANSLATION_BINS_M`, :data:`POSE_YAW_BINS_RAD`), accuracy of the bins averaged over the three,
    pooled over the split. (Sparsh's probe classifies the bins directly.)"""
    hits = _pose_bins(outputs.astype(np.float64)) == _pose_bins(targets.astype(np.float64))
    return float(hits.mean())


def sparsh_pose_bag_acc(outputs, targets, groups=None) -> float:
    """Sparsh's reported pose number: :func:`sparsh_pose_acc` per bag (``groups``), averaged over bags."""
    hits = (_pose_bins(outputs.astype(np.float64)) == _pose_bins(targets.astype(np.float64))).mean(1)
    g = np.asarray(_need_groups(groups, len(hits)))
    return float(np.mean([hits[g == k].mean() for k in dict.fromkeys(g.tolist())]))


_ALL = (
    Metric("accuracy", accuracy, True, "", "mean_i [pred_i = y_i]"),
    Metric("balanced_accuracy", balanced_accuracy, True, "", "mean over present classes c of recall_c"),
    Metric("f1", f1, True, "", "2TP / (2TP + FP + FN), class 1"),
    Metric("group_accuracy", group_accuracy, True, "", "mean over groups of the group's accuracy", "Sparsh"),
    Metric("sparsh_slip_f1", sparsh_slip_f1, True, "", "F1 of P>0.4 on 3 consecutive samples, trajectories 2..n-1",
           "Sparsh"),
    Metric("force_rmse", force_rmse, False, "N", "sqrt(mean_{i,k} e_ik^2)"),
    Metric("force_rmse_x", _axis_rmse(0), False, "N", "sqrt(mean_i e_ix^2)"),
    Metric("force_rmse_y", _axis_rmse(1), False, "N", "sqrt(mean_i e_iy^2)"),
    Metric("force_rmse_z", _axis_rmse(2), False, "N", "sqrt(mean_i e_iz^2)"),
    Metric("force_mae", force_mae, False, "N", "mean_{i,k} |e_ik|"),
    Metric("sparsh_force_mae_mN", sparsh_force_mae_mn, False, "mN", "1000 mean_{i,k} |e_ik| (Sparsh's 'RMSE')",
           "Sparsh"),
    Metric("at2_force_rmse_sum_mN", at2_force_rmse_sum_mn, False, "mN", "1000 sum_k sqrt(mean_i e_ik^2)",
           "AnyTouch 2"),
    Metric("pose_trans_rmse", pose_trans_rmse, False, "m", "sqrt(mean_i (e_ix^2 + e_iy^2))"),
    Metric("pose_trans_mae", pose_trans_mae, False, "m", "mean_i sqrt(e_ix^2 + e_iy^2)"),
    Metric("pose_rot_rmse", pose_rot_rmse, False, "rad", "sqrt(mean_i wrap(e_itheta)^2)"),
    Metric("pose_rot_mae", pose_rot_mae, False, "rad", "mean_i |wrap(e_itheta)|"),
    Metric("t3_pose_rmse_mm", t3_pose_rmse_mm, False, "mm", "1000 sqrt(mean_i ||e_i,xy||^2)", "T3"),
    Metric("sparsh_pose_acc", sparsh_pose_acc, True, "", "mean over dx, dy, dtheta of binned accuracy", "Sparsh"),
    Metric("sparsh_pose_bag_acc", sparsh_pose_bag_acc, True, "", "mean over bags of sparsh_pose_acc", "Sparsh"),
)
METRICS: Dict[str, Metric] = {m.name: m for m in _ALL}


def compute(name: str, outputs, targets, groups: Optional[Sequence[str]] = None) -> float:
    """Metric ``name`` of :data:`METRICS` on a whole split (numpy arrays or tensors)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    outputs, targets = _np(outputs), _np(targets)
    if len(outputs) != len(targets) or not len(targets):
        raise ValueError(f"metric {name}: {len(outputs)} outputs for {len(targets)} targets; expected the same "
                         "non-zero number")
    return METRICS[name].fn(outputs, targets, None if groups is None else list(groups))
