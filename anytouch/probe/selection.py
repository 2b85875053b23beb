"""Accuracy curves of a probe run and the three ways of turning them into one number.

* ``paper``: the best test accuracy over epochs at the paper's hyper-parameters. This is what the original reports
  (docs/original/probes.md#protocol: it evaluates on the test set after every epoch and keeps the maximum), i.e. epoch
  selection on the test set.
* ``last``: the test accuracy after the last epoch, at the paper's hyper-parameters.
* ``val``: the (grid point, epoch) with the best accuracy on a validation split carved from the training set, read
  from the curves of a second run trained without that split; the reported number is the test accuracy of the
  full-training-set run at that grid point and epoch (with a cosine schedule spanning all epochs, "stop at epoch e"
  is the full run's epoch-e head). Ties go to the lower validation loss, then the earlier grid point, then the later
  epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch

__all__ = ["Curves", "RunCurves", "Selection", "RULES", "best_on_test", "last_epoch", "val_selected"]

RULES = {
    "paper": "best test epoch (paper rule)",
    "last": "last epoch",
    "val": "epoch + hyper-parameters chosen on val",
}


@dataclass
class Curves:
    """Per-epoch results on one evaluation set: ``acc`` and ``loss`` (G, E) (accuracy in [0, 1]), ``n`` samples."""

    acc: torch.Tensor
    loss: torch.Tensor
    n: int

    def __post_init__(self):
        if self.acc.ndim != 2 or self.acc.shape != self.loss.shape:
            raise ValueError(f"acc and loss must both be (G, E); got {tuple(self.acc.shape)} and "
                             f"{tuple(self.loss.shape)}")


@dataclass
class RunCurves:
    """What a training run produced: mean training loss per epoch (G, E) and the curves of each evaluation set."""

    train_loss: torch.Tensor
    evals: Dict[str, Curves]
    steps_per_epoch: int
    n_train: int


@dataclass(frozen=True)
class Selection:
    """Grid point ``g`` (0 for the official protocol), epoch ``epoch`` (0-based) and the test accuracy there."""

    g: int
    epoch: int
    acc: float


def best_on_test(test: Curves, g: int) -> Selection:
    """The paper rule: the highest test accuracy of grid point ``g`` over epochs; the latest epoch reaching it (the
    original re-saves its checkpoint whenever test accuracy >= the best so far)."""
    row = test.acc[g]
    best = row.max()
    e = int(torch.nonzero(row == best).max())
    return Selection(g, e, float(best))


def last_epoch(test: Curves, g: int) -> Selection:
    return Selection(g, test.acc.shape[1] - 1, float(test.acc[g, -1]))


def val_selected(val: Curves, test: Curves) -> Selection:
    """(g, e) maximising validation accuracy (ties: lower val loss, earlier g, later e); the test accuracy there.

    ``val`` and ``test`` must have the same (G, E) shape (val from the run on the carved training split, test from
    the run on the whole training set)."""
    if val.acc.shape != test.acc.shape:
        raise ValueError(f"val curves {tuple(val.acc.shape)} and test curves {tuple(test.acc.shape)} differ in shape")
    G, E = val.acc.shape
    g, e = min(((g, e) for g in range(G) for e in range(E)),
               key=lambda ge: (-float(val.acc[ge]), float(val.loss[ge]), ge[0], -ge[1]))
    return Selection(g, e, float(test.acc[g, e]))
