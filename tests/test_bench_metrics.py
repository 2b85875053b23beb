"""Every benchmark metric against a direct numpy computation on random inputs, plus the task table's metric names."""
import math

import numpy as np
import pytest
import torch

from anytouch.bench import metrics as M
from anytouch.bench.tasks import TASKS

RNG = np.random.default_rng(0)


def _class_data(n=200, c=5):
    return RNG.normal(size=(n, c)), RNG.integers(c, size=n)


def test_classification_metrics():
    scores, y = _class_data()
    pred = scores.argmax(1)
    assert M.compute("accuracy", scores, y) == pytest.approx(np.mean(pred == y))
    recalls = [np.sum((pred == c) & (y == c)) / np.sum(y == c) for c in range(5)]
    assert M.compute("balanced_accuracy", scores, y) == pytest.approx(np.mean(recalls))
    # a class absent from the targets does not count
    y4 = np.where(y == 4, 0, y)
    recalls4 = [np.sum((pred == c) & (y4 == c)) / np.sum(y4 == c) for c in range(4)]
    assert M.compute("balanced_accuracy", scores, y4) == pytest.approx(np.mean(recalls4))
    groups = [f"g{i % 7}" for i in range(len(y))]
    per = [np.mean(pred[np.arange(len(y)) % 7 == k] == y[np.arange(len(y)) % 7 == k]) for k in range(7)]
    assert M.compute("group_accuracy", torch.tensor(scores), torch.tensor(y), groups) == pytest.approx(np.mean(per))


def test_binary_metrics_and_output_forms():
    logits, y = RNG.normal(size=300), RNG.integers(2, size=300)
    pred = (logits > 0).astype(int)
    tp, fp, fn = np.sum((pred == 1) & (y == 1)), np.sum((pred == 1) & (y == 0)), np.sum((pred == 0) & (y == 1))
    assert M.compute("f1", logits, y) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert M.compute("accuracy", logits[:, None], y) == pytest.approx(np.mean(pred == y))
    two = np.stack([np.zeros(300), logits], 1)  # softmax scores with the same decision
    assert M.compute("f1", two, y) == M.compute("f1", logits, y)


def test_sparsh_slip_f1():
    logits, y = RNG.normal(size=90), RNG.integers(2, size=90)
    groups = np.repeat(["a", "b", "c", "d", "e", "f"], 15)
    p = 1 / (1 + np.exp(-logits))
    preds, ys = [], []
    for k in "bcde":  # first and last trajectory left out
        idx = np.flatnonzero(groups == k)
        b = p[idx] > 0.4
        preds += [0, 0] + [int(b[t] and b[t - 1] and b[t - 2]) for t in range(2, len(idx))]
        ys += list(y[idx])
    preds, ys = np.array(preds), np.array(ys)
    tp, fp, fn = np.sum((preds == 1) & (ys == 1)), np.sum((preds == 1) & (ys == 0)), np.sum((preds == 0) & (ys == 1))
    assert M.compute("sparsh_slip_f1", logits, y, groups) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    with pytest.raises(ValueError, match="group name per sample"):
        M.compute("sparsh_slip_f1", logits, y)


def test_force_metrics():
    out, tgt = RNG.normal(size=(100, 3)), RNG.normal(size=(100, 3)) * 2
    e = out - tgt
    assert M.compute("force_rmse", out, tgt) == pytest.approx(math.sqrt(np.mean(e ** 2)))
    for k, axis in enumerate("xyz"):
        assert M.compute(f"force_rmse_{axis}", out, tgt) == pytest.approx(math.sqrt(np.mean(e[:, k] ** 2)))
    assert M.compute("force_mae", out, tgt) == pytest.approx(np.mean(np.abs(e)))
    # Sparsh's "RMSE": mean over samples of the mean over axes of sqrt(e^2), in mN
    assert M.compute("sparsh_force_mae_mN", out, tgt) == pytest.approx(
        1000 * np.mean([np.mean([math.sqrt(e[i, k] ** 2) for k in range(3)]) for i in range(100)]))
    assert M.compute("at2_force_rmse_sum_mN", out, tgt) == pytest.approx(
        1000 * sum(math.sqrt(np.mean(e[:, k] ** 2)) for k in range(3)))
    with pytest.raises(ValueError, match="differ"):
        M.compute("force_rmse", out[:, :2], tgt)


def test_pose_metrics():
    out = np.c_[RNG.normal(scale=2e-3, size=(80, 2)), RNG.normal(scale=0.5, size=80)]
    tgt = np.c_[RNG.normal(scale=2e-3, size=(80, 2)), RNG.normal(scale=0.5, size=80)]
    tgt[0, 2], out[0, 2] = 3.1, -3.1  # wraps to a small error
    e = out - tgt
    dth = np.arctan2(np.sin(e[:, 2]), np.cos(e[:, 2]))
    assert abs(dth[0]) < 0.1
    assert M.compute("pose_trans_rmse", out, tgt) == pytest.approx(math.sqrt(np.mean(e[:, 0] ** 2 + e[:, 1] ** 2)))
    assert M.compute("pose_trans_mae", out, tgt) == pytest.approx(np.mean(np.hypot(e[:, 0], e[:, 1])))
    assert M.compute("pose_rot_rmse", out, tgt) == pytest.approx(math.sqrt(np.mean(dth ** 2)))
    assert M.compute("pose_rot_mae", out, tgt) == pytest.approx(np.mean(np.abs(dth)))
    assert M.compute("t3_pose_rmse_mm", out, tgt) == pytest.approx(1000 * math.sqrt(np.mean(np.sum(e[:, :2] ** 2, 1))))
    t_edges = [-5e-3, -2e-3, -1e-3, -5e-4, -1e-4, 1e-4, 5e-4, 1e-3, 2e-3, 5e-3]
    y_edges = np.radians([-2, -1, -0.5, -0.2, -0.03, 0.03, 0.2, 0.5, 1, 2])

    def bins(x):
        return np.stack([[sum(v >= t for t in edges) for v in x[:, k]]
                         for k, edges in enumerate((t_edges, t_edges, y_edges))], 1)

    hits = bins(out) == bins(tgt)
    assert M.compute("sparsh_pose_acc", out, tgt) == pytest.approx(hits.mean())
    groups = ["b0"] * 30 + ["b1"] * 50
    assert M.compute("sparsh_pose_bag_acc", out, tgt, groups) == pytest.approx(
        (hits[:30].mean() + hits[30:].mean()) / 2)
    assert M.compute("sparsh_pose_acc", tgt, tgt) == 1.0


def test_metric_table():
    with pytest.raises(ValueError, match="unknown metric 'rmse'"):
        M.compute("rmse", np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same non-zero"):
        M.compute("accuracy", np.zeros((0, 3)), np.zeros(0))
    for m in M.METRICS.values():  # every regression metric states an SI (or upstream-named) unit
        assert m.formula and (m.unit or m.higher_is_better)
    for t in TASKS:
        assert all(name in M.METRICS for name in t.metrics)
    assert {t.name: t.higher_is_better for t in TASKS}["force"] is False
