"""The official linear-probe protocol of AnyTouch (docs/original/probes.md#protocol, ``main_probe.py``): a frozen
encoder re-run every step on freshly augmented images, one linear head trained with AdamW and a per-iteration cosine
schedule, the test set evaluated after every epoch.

Differences from the original, all deliberate: batches are sharded without ``DistributedSampler`` padding, so the
reduced test accuracy counts every test sample exactly once (the original padded the test set to a multiple of the
world size and counted the repeats); the test loss is the per-sample mean (the original averaged batch means);
the binary decision ``sigmoid > 0.5`` is taken in fp32. ``probe.batch_size`` is the effective batch, split evenly
over the processes (the original's 64 per GPU on 2 GPUs is ``batch_size=128`` on any number of GPUs).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.device_aug import touch_on_device
from ..engine.data import build_loader
from ..engine.dist import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from ..engine.logging import RunLogger, WindowMeans
from ..engine.rng import generator
from ..engine.schedule import lr_at
from ..engine.step import Stepper
from .features import encode, shard
from .heads import LinearHead
from .selection import Curves, RunCurves
from .tasks import Recipe, Task, correct, per_sample_loss

__all__ = ["fit_official", "evaluate", "per_process_batch"]


def per_process_batch(batch_size: int, env: DistEnv) -> int:
    if batch_size % env.world_size:
        raise ValueError(f"probe.batch_size={batch_size} (the effective batch) is not divisible by the "
                         f"{env.world_size} processes")
    return batch_size // env.world_size


@torch.no_grad()
def evaluate(encoder, head, loader: DataLoader, task: Task, recipe: Recipe, env: DistEnv,
             dtype: torch.dtype = torch.float32) -> Tuple[float, float, int]:
    """Accuracy (in [0, 1]), mean per-sample loss and sample count over all processes' shards of an evaluation set
    (``loader`` iterates this process's :func:`~anytouch.probe.features.shard`); ``dtype``: autocast dtype."""
    sums = torch.zeros(3, dtype=torch.float64, device=env.device)  # hits, loss sum, samples
    autocast = torch.autocast(env.device.type, dtype=dtype, enabled=dtype != torch.float32)
    for batch in loader:
        touch = touch_on_device(batch["touch"], batch["touch_aug"], env.device)
        labels = batch["label"].to(env.device, non_blocking=True)
        with autocast:
            logits = head(encode(encoder, touch, recipe.sensor, recipe.pooling, task.frames))
        sums[0] += correct(logits, labels, task).sum()
        sums[1] += per_sample_loss(logits, labels, task).sum()
        sums[2] += labels.shape[0]
    if env.distributed:
        dist.all_reduce(sums)
    hits, loss, n = sums.tolist()
    return hits / n, loss / n, int(n)


def fit_official(encoder, train_set: Dataset, evals: Dict[str, Dataset], task: Task, recipe: Recipe, *,
                 env: DistEnv, precision: str = "auto", num_workers: int = 0, eval_batch_size: int = 256,
                 clip_grad: Optional[float] = None, logger: Optional[RunLogger] = None,
                 log_every: int = 20) -> RunCurves:
    """Train one head on ``train_set`` with the frozen ``encoder``; evaluate every set of ``evals`` after each epoch.

    Args:
        encoder: a frozen :class:`~anytouch.models.TouchEncoder` on ``env.device`` (eval mode).
        train_set: the training split, with its training augmentation (drawn per (seed, epoch, sample)).
        evals: name -> evaluation set (``test``, or ``val`` for the selection run).
        precision: autocast for encoder and head (``auto``: bf16 on GPU, fp32 on CPU; ``fp16`` uses a GradScaler
            like the original).
        eval_batch_size: per process.
    Returns:
        :class:`RunCurves` with one grid point (G = 1).
    """
    device = env.device
    loader = build_loader(train_set, per_process_batch(recipe.batch_size, env), recipe.seed, env, num_workers)
    spe = len(loader)
    head = LinearHead(task.head_in(encoder.proj.out_features), task.outputs, generator(recipe.head_seed)).to(device)
    model = wrap_ddp(head, env)
    # docs/original/probes.md#protocol: AdamW over the head only, one group, weight decay on the bias too
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.lr, betas=recipe.betas, eps=recipe.eps,
                                  weight_decay=recipe.weight_decay)
    stepper = Stepper(model, optimizer, device, precision, clip_grad)
    eval_loaders = {name: DataLoader(Subset(ds, shard(len(ds), env)), batch_size=eval_batch_size,
                                     num_workers=num_workers, pin_memory=device.type == "cuda",
                                     persistent_workers=num_workers > 0)
                    for name, ds in evals.items()}
    curves = {name: torch.zeros(2, recipe.epochs) for name in evals}
    train_loss, counts = torch.zeros(recipe.epochs), {name: 0 for name in evals}
    window = WindowMeans()
    if logger is not None:
        logger.progress(recipe.epochs * spe, 0, f"{task.name} official")
    for epoch in range(recipe.epochs):
        loader.sampler.set_epoch(epoch)
        head.train()
        epoch_loss = torch.zeros((), device=device)
        for s, batch in enumerate(loader):
            step = epoch * spe + s
            lr = lr_at(step, spe, recipe.lr, recipe.epochs, recipe.warmup_epochs, recipe.min_lr)
            touch = touch_on_device(batch["touch"], batch["touch_aug"], device)  # augmented on the device
            labels = batch["label"].to(device, non_blocking=True)
            with torch.no_grad(), stepper.autocast():  # frozen encoder, recomputed on augmented images every step
                feats = encode(encoder, touch, recipe.sensor, recipe.pooling, task.frames)
            with stepper.autocast():
                loss = per_sample_loss(model(feats), labels, task).mean()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"{task.name}: loss is {value} at epoch {epoch}, step {s}; stopping "
                                         "(as the original probe does)")
            stepper.backward(loss)
            stepper.step(lr)
            epoch_loss += loss.detach()
            if logger is not None:
                window.add(train_loss=value)
                if (s + 1) % log_every == 0 or s + 1 == spe:
                    logger.log(epoch + (s + 1) / spe, {**window.pop(), "lr": lr})
                logger.update(epoch=epoch, loss=f"{value:.4f}")
        train_loss[epoch] = float(all_reduce_mean(epoch_loss / spe))
        head.eval()
        for name, dl in eval_loaders.items():
            acc, loss_v, counts[name] = evaluate(encoder, unwrap(model), dl, task, recipe, env, stepper.dtype)
            curves[name][:, epoch] = torch.tensor([acc, loss_v])
            if logger is not None:
                logger.log(epoch + 1, {f"perf/{name}_acc1": 100 * acc, f"perf/{name}_loss": loss_v}, epoch=epoch)
                logger.print(f"{task.name} official epoch {epoch}: {name} acc {100 * acc:.2f}% loss {loss_v:.4f} "
                             f"(max {100 * float(curves[name][0, :epoch + 1].max()):.2f}%)")
    return RunCurves(
        train_loss=train_loss[None],
        evals={name: Curves(c[0:1].clone(), c[1:2].clone(), counts[name]) for name, c in curves.items()},
        steps_per_epoch=spe, n_train=len(train_set),
    )
