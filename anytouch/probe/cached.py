"""The fast linear-probe protocol: features extracted once and cached (:mod:`anytouch.probe.cache`), then a grid of
heads (learning rate x weight decay) trained together on them.

The G heads are one (G, C, F) weight tensor with one :class:`~anytouch.probe.heads.GridAdamW`; every head sees the
same batches, in the official loop's order (the same :class:`~anytouch.engine.data.ShardSampler` permutation per
epoch, batches of ``batch_size`` consecutive samples of it), with the same per-iteration schedule and epochs.
Epoch ``e`` reads feature view ``e mod V``. So with one grid point at the official hyper-parameters, the same seeds
and a task without augmentation (or V = epochs views) this reproduces the official protocol up to float rounding.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from ..engine.data import ShardSampler
from ..engine.dist import DistEnv
from ..engine.logging import RunLogger
from ..engine.rng import generator
from ..engine.schedule import lr_at
from .cache import FeatureCache, cache_key, dataset_identity
from .features import extract_features
from .heads import GridAdamW, GridHeads
from .selection import Curves, RunCurves
from .tasks import Recipe, Task, correct, per_sample_loss

__all__ = ["cached_features", "fit_grid", "grid_points"]

Features = Tuple[torch.Tensor, torch.Tensor]  # (V, N, F) features, (N,) labels


def grid_points(lrs: Sequence[float], weight_decays: Sequence[float],
                paper: Tuple[float, float]) -> List[Tuple[float, float]]:
    """All (lr, wd) pairs of the grid, the paper's pair first (grid point 0) whether or not the grid lists it."""
    return [paper] + [(float(lr), float(wd)) for lr in lrs for wd in weight_decays if (lr, wd) != paper]


def cached_features(encoder, dataset, task: Task, recipe: Recipe, *, identity: Dict, views: int, env: DistEnv,
                    dtype: torch.dtype, batch_size: int, num_workers: int, cache: FeatureCache,
                    label: str, log=print, content: Optional[Dict] = None) -> Tuple[Optional[Features], bool]:
    """Features of ``dataset`` from the cache, or extracted (on all processes) and stored.

    Args:
        identity: the parts of the cache key that describe the checkpoint and the dataset's origin (name, split,
            root, validation carve); the dataset's content and the feature recipe are added here.
        views: augmented views per sample (forced to 1 when the dataset does not augment).
        label: file-name prefix and progress-bar text, e.g. ``tag_material-train``.
        content: ``dataset_identity(dataset)`` when the caller already has it (it stats every file).
    Returns:
        ((features (V, N, F), labels (N,)) on rank 0 and None on other ranks, whether the cache had them).
    """
    augments = getattr(getattr(dataset, "transform", None), "train", True)
    if not augments:
        views = 1  # no augmentation: every view would be the same
    parts = {**identity, "dataset_content": content if content is not None else dataset_identity(dataset),
             "features": {"image_size": encoder.image_size, "pooling": recipe.pooling, "sensor": recipe.sensor,
                          "frames": task.frames, "views": views, "dtype": str(dtype),
                          # the seed draws the augmentation only: unaugmented features are shared by every seed
                          "seed": recipe.seed if augments else None}}
    key = cache_key(parts)
    hit = cache.load(key, label) if env.is_main else None
    found = [hit is not None]
    if env.distributed:
        dist.broadcast_object_list(found, src=0)  # every rank must take the same branch
    if found[0]:
        log(f"feature cache hit: {cache.path(key, label)}")
        return hit, True
    out = extract_features(encoder, dataset, task, pooling=recipe.pooling, sensor=recipe.sensor, views=views,
                           seed=recipe.seed, batch_size=batch_size, env=env, dtype=dtype, num_workers=num_workers,
                           desc=label)
    if out is not None:
        log(f"feature cache write: {cache.save(key, label, out[0], out[1], parts)}")
    return out, False


@torch.no_grad()
def _evaluate(heads: GridHeads, feats: torch.Tensor, labels: torch.Tensor, task: Task,
              chunk: int = 4096) -> Tuple[torch.Tensor, torch.Tensor]:
    """(G,) accuracy and mean per-sample loss of every head on (N, F) features."""
    hits = torch.zeros(heads.weight.shape[0], device=feats.device)
    loss = torch.zeros_like(hits)
    for i in range(0, feats.shape[0], chunk):
        logits = heads(feats[i:i + chunk].float())  # (G, b, C)
        y = labels[i:i + chunk]
        hits += correct(logits, y, task).sum(1)
        loss += per_sample_loss(logits, y, task).sum(1)
    n = feats.shape[0]
    return (hits / n).cpu(), (loss / n).cpu()


def fit_grid(train: Features, evals: Dict[str, Features], task: Task, recipe: Recipe,
             points: Sequence[Tuple[float, float]], *, device: torch.device, logger: Optional[RunLogger] = None,
             log_g: int = 0, log_every: int = 20) -> RunCurves:
    """Train one head per (lr, wd) of ``points`` on cached features; evaluate all of them after every epoch.

    Args:
        train: (features (V, N, F), labels (N,)); epoch e uses view e mod V.
        evals: name -> (features (1, N, F) or (N, F), labels).
        recipe: epochs, effective batch size, betas, eps, schedule, seeds (its lr / weight decay are unused).
        points: the (lr, weight decay) grid.
        log_g: the grid point whose loss / lr / accuracy go to the logger (the paper's).
    Returns:
        :class:`RunCurves` with G = len(points).
    """
    feats, labels = train[0].to(device), train[1].to(device)
    views, n, dim = feats.shape
    steps = n // recipe.batch_size
    if steps == 0:
        raise ValueError(f"{task.name}: {n} training samples are fewer than one batch of {recipe.batch_size}")
    G = len(points)
    lrs = [p[0] for p in points]
    heads = GridHeads(G, dim, task.outputs, generator(recipe.head_seed)).to(device)
    opt = GridAdamW([heads.weight, heads.bias], torch.tensor([p[1] for p in points]), recipe.betas, recipe.eps)
    sampler = ShardSampler(n, recipe.seed)  # the official loader's permutation of each epoch
    ev = {name: (f.reshape(-1, f.shape[-1]).to(device), y.to(device)) for name, (f, y) in evals.items()}
    curves = {name: torch.zeros(2, G, recipe.epochs) for name in evals}
    train_loss = torch.zeros(G, recipe.epochs)
    window, in_window = torch.zeros((), device=device), 0  # loss sum of grid point log_g since the last record
    if logger is not None:
        logger.progress(recipe.epochs, 0, f"{task.name} cached x{G}")
    for epoch in range(recipe.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor([i for _, i in sampler], device=device)
        view = feats[epoch % views]
        epoch_loss = torch.zeros(G, device=device)
        for s in range(steps):
            step = epoch * steps + s
            lr = torch.tensor([lr_at(step, steps, base, recipe.epochs, recipe.warmup_epochs, recipe.min_lr)
                               for base in lrs])
            idx = order[s * recipe.batch_size:(s + 1) * recipe.batch_size]
            loss = per_sample_loss(heads(view[idx].float()), labels[idx], task).mean(1)  # (G,)
            loss.sum().backward()  # heads are independent: each gets the gradient of its own mean loss
            opt.step(lr)
            opt.zero_grad()
            epoch_loss += loss.detach()
            window += loss.detach()[log_g]  # summed on the device: no host sync per step
            in_window += 1
            if logger is not None and ((s + 1) % log_every == 0 or s + 1 == steps):
                logger.log(epoch + (s + 1) / steps, {"train_loss": float(window) / in_window, "lr": float(lr[log_g])})
                window.zero_()
                in_window = 0
        train_loss[:, epoch] = (epoch_loss / steps).cpu()
        if not bool(torch.isfinite(train_loss[:, epoch]).all()):
            bad = [points[g] for g in range(G) if not math.isfinite(float(train_loss[g, epoch]))]
            raise FloatingPointError(f"{task.name}: non-finite training loss at epoch {epoch} for (lr, wd) {bad}; "
                                     "remove those values from probe.grid")
        for name, (f, y) in ev.items():
            acc, loss_v = _evaluate(heads, f, y, task)
            curves[name][0, :, epoch], curves[name][1, :, epoch] = acc, loss_v
            if logger is not None:
                logger.log(epoch + 1, {f"perf/{name}_acc1": 100 * float(acc[log_g]), f"perf/{name}_loss":
                                       float(loss_v[log_g])}, epoch=epoch)
        if logger is not None:
            logger.update(epoch=epoch, loss=f"{float(train_loss[log_g, epoch]):.4f}")
    return RunCurves(train_loss=train_loss,
                     evals={name: Curves(c[0], c[1], ev[name][0].shape[0]) for name, c in curves.items()},
                     steps_per_epoch=steps, n_train=n)
