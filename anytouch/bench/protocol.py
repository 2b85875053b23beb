"""The benchmark protocol: one head trained on frozen features per (encoder, task, head, budget, seed) cell.

What makes the numbers comparable (unlike the upstream probes, which all pick their epoch on the test set):

* **Frozen splits** ``train`` / ``val`` / ``test`` come from the task's data module.
* **Budgets** are nested subsets of the training split, drawn once per seed (not per encoder) by
  :func:`anytouch.bench.tasks.budget_indices`: a seeded permutation per class (stratified; all samples form one
  stratum for regression), of which the first ``ceil(budget · n_class)`` are kept (at least one per class), so
  1 % ⊂ 10 % ⊂ 33 % ⊂ 100 %.
* **Seeds** drive the budget subset, the head's initialisation and the batch order.
* **Selection on validation only**: after every epoch the head is scored on ``val`` with the task's primary metric
  (its first); the best epoch (the earliest among ties) is restored and the test split is scored **once**.
* Regression heads learn standardised targets: the mean and std of the cell's own training subset (per output;
  a constant output keeps std 1), so no task carries a target scale; predictions are mapped back to the task's SI
  units before scoring.

One recipe for every encoder (:class:`ProtocolConfig`): AdamW, constant learning rate, fixed epochs and batch size.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import torch

from ..engine.rng import derive_seed, generator, seeded
from .heads import build_head, head_loss

__all__ = ["ProtocolConfig", "FeatureSource", "Scorer", "run_cell", "predict"]


@dataclass
class ProtocolConfig:
    """The training recipe shared by every cell. ``num_heads`` 0 = width // 64; ``hidden`` 0 = a linear task
    layer, else Linear -> ReLU -> Linear with that many units."""

    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    eval_batch_size: int = 256
    num_heads: int = 0
    hidden: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class FeatureSource(Protocol):
    """A split's features: ``target`` (N,) / (N, K), ``groups`` (N names), ``batch(idx) -> (tokens, pooled)``."""

    target: torch.Tensor
    groups: List[str]

    def batch(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]: ...


class Scorer(Protocol):
    """``score(task, pred, target, groups) -> {metric: value}`` with ``pred`` class logits (N, C), a binary logit
    (N,) or regression values (N, K) in the target's units; ``higher_is_better(metric) -> bool``."""

    def score(self, task: Any, pred: torch.Tensor, target: torch.Tensor, groups: Sequence[str]) -> Dict[str, float]: ...

    def higher_is_better(self, metric: str) -> bool: ...


@torch.no_grad()
def predict(head: torch.nn.Module, src: FeatureSource, kind: str, batch_size: int, device: torch.device,
            scale: Optional[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Head outputs over a whole split, on the CPU: logits (N, C), binary logits (N,), or regression values
    (N, K) mapped back through ``scale`` = (mean, std)."""
    head.eval()
    outs = []
    for idx in torch.arange(len(src.target)).split(batch_size):
        tokens, pooled = src.batch(idx)
        outs.append(head(tokens.to(device).float(), pooled.to(device).float()).cpu())
    out = torch.cat(outs)
    if kind == "binary":
        return out[:, 0]
    if kind == "regression":
        return out * scale[1] + scale[0]
    return out


def _better(new: float, best: float, higher: bool) -> bool:
    if math.isnan(new):
        return False
    return math.isnan(best) or (new > best if higher else new < best)


def run_cell(task: Any, head_name: str, dims: Tuple[int, int], train: FeatureSource, train_idx: torch.Tensor,
             val: FeatureSource, test: FeatureSource, cfg: ProtocolConfig, seed: int, scorer: Scorer,
             device: torch.device, on_epoch: Optional[Callable[[int, float], None]] = None) -> Dict[str, Any]:
    """Train one head (``head_name`` on an encoder of (token width, pooled width) ``dims``) on ``train_idx`` of
    ``train``, select its epoch on ``val`` with the task's primary metric, score ``test`` once there.

    Returns ``{"selected_epoch", "val": metrics at that epoch, "test": metrics, "val_curve": primary per epoch,
    "train_loss": per epoch, "n_train", "head_params"}``.
    """
    kind, primary = task.kind, task.metrics[0]
    higher = scorer.higher_is_better(primary)
    y = train.target[train_idx]
    scale = None
    if kind == "regression":
        y = y.float().reshape(len(y), -1)
        std = y.std(0, unbiased=False) if len(y) > 1 else torch.ones(y.shape[1])
        scale = (y.mean(0), torch.where(std > 1e-8, std, torch.ones_like(std)))
    with seeded(derive_seed(seed, "head", task.name, head_name)):
        head = build_head(head_name, kind, task.num_outputs, dims[0], dims[1], cfg.num_heads, cfg.hidden)
    head.to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = generator(seed, "order", task.name, head_name)
    best_epoch, best_value, best_state, best_val = -1, float("nan"), None, {}
    val_curve, losses = [], []
    for epoch in range(cfg.epochs):
        head.train()
        total, count = 0.0, 0
        for idx in train_idx[torch.randperm(len(train_idx), generator=order)].split(cfg.batch_size):
            tokens, pooled = train.batch(idx)
            target = train.target[idx]
            if scale is not None:
                target = (target.float().reshape(len(idx), -1) - scale[0]) / scale[1]
            out = head(tokens.to(device).float(), pooled.to(device).float())
            loss = head_loss(kind, out, target.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        losses.append(total / count)
        metrics = scorer.score(task, predict(head, val, kind, cfg.eval_batch_size, device, scale), val.target,
                               val.groups)
        val_curve.append(metrics[primary])
        if on_epoch is not None:
            on_epoch(epoch, metrics[primary])
        if best_state is None or _better(metrics[primary], best_value, higher):
            best_epoch, best_value, best_val = epoch, metrics[primary], metrics
            best_state = copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    test_metrics = scorer.score(task, predict(head, test, kind, cfg.eval_batch_size, device, scale), test.target,
                                test.groups)
    return {"selected_epoch": best_epoch, "val": best_val, "test": test_metrics, "val_curve": val_curve,
            "train_loss": losses, "n_train": int(len(train_idx)),
            "head_params": sum(p.numel() for p in head.parameters())}
