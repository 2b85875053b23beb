"""The stage-independent training job: setup, resume, the epoch loop, checkpoints, logging, shutdown.

A stage subclasses :class:`Trainer`, builds its model, objective and loaders, calls :meth:`Trainer.setup`, and
implements :meth:`Trainer.forward` (one batch -> the objective's output dict) and, when its loader names are not the
objective's batch kinds, :meth:`Trainer.batch_kind`. The objective declares the scalar parts it returns per batch kind
(its ``parts`` attribute); the trainer logs exactly those and stops on an undeclared one. The config must have
``train`` (:class:`anytouch.train.config.TrainConfig`), ``optim`` and ``run`` sections.

Everything random in the loop is a function of (seed, epoch, step, rank, sample index) -- batch order (engine.
interleave), shuffling and augmentation (engine.data), and what ``forward`` draws from :meth:`Trainer.generator` --
so a run resumed from any checkpoint continues exactly like the uninterrupted run.
"""
from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..config import load_config, parse_cli, save_config, to_dict
from ..data.skip import SkipErrors, format_skipped, skipped_report
from ..models.layers import Transformer
from .checkpointing import (LAST, find_resume, load_training_checkpoint, previous_run, remove_stale_temps,
                            restore_rng, retention_note, save_training_checkpoint)
from .dist import DistEnv, all_reduce_mean, broadcast_from_main, gather_to_main, init_distributed, shutdown, wrap_ddp
from .interleave import Interleaved
from .logging import RunLogger, WindowMeans, peak_memory_gb
from .optim import build_adamw, resolve_lr
from .rng import generator, seed_all
from .schedule import lr_at, universal_prob
from .step import NonFiniteLossError, Stepper

__all__ = ["NonFiniteLossError", "Trainer", "compile_towers", "declared_parts", "launch"]


class Trainer:
    """Subclasses set ``kind`` (checkpoint kind, e.g. "stage1") and ``title`` (for messages)."""

    kind: str = ""
    title: str = ""

    def __init__(self, cfg: Any, env: DistEnv):
        self.cfg, self.env = cfg, env
        self.out = Path(cfg.run.output_dir)
        # never overwrite an earlier run silently (run.output_dir has a default, so re-running a script lands here);
        # checked before anything is written there, on rank 0 for all ranks so that they all stop
        found = broadcast_from_main(previous_run(self.out) if env.is_main and not cfg.run.resume else None)
        if found:
            raise FileExistsError(
                f"run.output_dir={self.out} holds an earlier run ({found}); a fresh start would overwrite it. "
                f"Continue that run with run.resume=auto, or start a new one in a fresh folder (another "
                f"run.output_dir, or move {self.out} aside)")
        self.log = RunLogger(self.out, env, cfg.run.tb_dir)
        seed_all(cfg.run.seed + env.rank)
        self.epoch, self.start_step = 0, 0  # the next batch to train on: (epoch, step within the epoch)
        self.last_saved: Optional[Path] = None

    def setup(self, model: nn.Module, objective: nn.Module, stream: Interleaved) -> None:
        """Wrap ``objective`` (a module whose parameters include ``model``'s) for DDP and build the optimizer over
        ``model``'s trainable parameters. ``model`` is what checkpoints hold (a TouchMAE or an AnyTouchModel)."""
        t, o = self.cfg.train, self.cfg.optim
        self.model, self.arch, self.stream = model, model.arch, stream
        self.steps_per_epoch = stream.steps_per_epoch
        self.eff_batch = max(t.batch_size.values()) * t.accum_iter * self.env.world_size
        self.base_lr = resolve_lr(o.lr, o.blr, self.eff_batch)
        # Objectives leave some parameters idle in a step (stage 1: the image or the video head; stage 2: e.g. the
        # cross head in alignment steps). find_unused_parameters lets DDP finish its reduction anyway and keeps an
        # idle parameter's grad None, so AdamW leaves it alone as in the original. (A 0-weighted dummy loss would give
        # it zero gradients instead, and AdamW would still move it through momentum and weight decay.) The batch type
        # is the same on every rank at a given step (engine.interleave), so ranks agree on what is idle.
        if t.compile:
            compile_towers(model)
        self.objective_name = type(objective).__name__
        self.parts = declared_parts(objective, {name: self.batch_kind(name) for name in stream.names})
        self.ddp = wrap_ddp(objective, self.env, find_unused_parameters=True)
        self.optimizer = build_adamw(model, self.base_lr, o.weight_decay, o.betas, o.eps)
        self.stepper = Stepper(self.ddp, self.optimizer, self.env.device, t.precision, o.clip_grad)

    # -- what a stage provides ------------------------------------------------------------------------------
    def forward(self, name: str, batch: Dict[str, Any], step: int, p: float) -> Tuple[Dict[str, torch.Tensor], int]:
        """Run ``self.ddp`` on one batch of loader ``name`` at global ``step`` (universal-sensor probability ``p``).
        Returns (output dict with ``loss``, number of samples)."""
        raise NotImplementedError

    def batch_kind(self, name: str) -> str:
        """The objective's batch kind (a key of its ``parts``) of loader ``name``'s batches; by default the name."""
        return name

    def scalar_names(self, name: str, parts: Dict[str, float]) -> Dict[str, float]:
        """Logged names of a ``name`` batch's parts (``train_loss_full`` is added for ``loss``): ``loss`` ->
        ``train_loss_<name>`` (docs/original/recipe.md#logging), ``loss_<x>`` -> ``train_loss_<name>_<x>``."""
        return {f"train_loss_{name}{k[len('loss'):]}" if k.startswith("loss") else f"train_{k}_{name}": v
                for k, v in parts.items()}

    def generator(self, purpose: str, step: int) -> torch.Generator:
        """A CPU generator for this rank at global ``step`` (masks, universal-sensor draws, ...)."""
        return generator(self.cfg.run.seed, purpose, self.env.rank, step)

    # -- resume / save --------------------------------------------------------------------------------------
    def resume(self) -> None:
        # rank 0 decides and every rank follows: a rank that cannot see rank 0's choice (an output folder that is
        # not shared between nodes) must fail, not silently start fresh while the others resume
        path = broadcast_from_main(find_resume(self.cfg.run.resume, self.out) if self.env.is_main else None)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"rank {self.env.rank}: rank 0 resumes from {path}, which this process cannot "
                                    f"read; run.output_dir must be on storage every node shares")
        if path is None:
            self.rewind_log(0)  # (resume=auto before any checkpoint: the records of a run killed before its first save)
            return
        ckpt = load_training_checkpoint(path, self.kind, self.arch.to_dict())
        pos = ckpt["data_state"]
        if pos["step_in_epoch"] and pos["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(
                f"{path} stopped mid-epoch with {pos['steps_per_epoch']} steps per epoch, this run has "
                f"{self.steps_per_epoch} (different data, batch size or number of processes); resume from an "
                f"epoch checkpoint (run.resume={self.out}/checkpoint-<epoch>.pth) or with the original settings")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.stepper.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt, self.env)
        self.epoch, self.start_step, self.last_saved = pos["epoch"], pos["step_in_epoch"], path
        self.rewind_log(self.epoch * self.steps_per_epoch + self.start_step)
        self.log.print(f"resumed from {path}: epoch {self.epoch}, step {self.start_step}/{self.steps_per_epoch}")

    def rewind_log(self, step: int) -> None:
        """Drop the log records past global ``step``: the resumed run logs those steps again."""
        dropped = self.log.rewind(step, step / self.steps_per_epoch)
        if dropped:
            self.log.print(f"log.jsonl: dropped {dropped} record(s) past step {step}; those steps run again")

    def save(self, epoch: int, next_epoch: int, next_step: int, epoch_end: bool) -> None:
        save_training_checkpoint(
            self.out, self.env, self.model, to_dict(self.cfg), self.optimizer, scaler=self.stepper.state_dict(),
            epoch=epoch, step=next_epoch * self.steps_per_epoch + next_step, keep_epoch=epoch_end,
            keep_last=self.cfg.train.keep_last, keep_every=self.cfg.train.keep_every,
            data_state={"epoch": next_epoch, "step_in_epoch": next_step, "steps_per_epoch": self.steps_per_epoch},
        )
        self.last_saved = self.out / LAST

    # -- the loop -------------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Train from the resume point to ``train.epochs`` (or ``train.max_steps``)."""
        if self.env.is_main:
            save_config(self.cfg, self.out / "config.yaml")
            for p in remove_stale_temps(self.out):
                self.log.print(f"removed {p.name}: the temp file of a checkpoint write that did not finish")
        self.resume()
        t = self.cfg.train
        batches = dict(zip(self.stream.names, self.stream.num_batches))
        self.log.print(f"{self.title}: {self.steps_per_epoch} steps/epoch {batches}, {t.epochs} epochs, "
                       f"lr {self.base_lr:.3g} (effective batch {self.eff_batch}), {self.env.world_size} process(es) "
                       f"on {self.env.device}, {self.stepper.dtype}; {retention_note(t.keep_last, t.keep_every)}")
        while self.epoch < self.cfg.train.epochs:
            finished = self.train_epoch(self.epoch, self.start_step)
            self.epoch, self.start_step = self.epoch + 1, 0
            if not finished:
                break
        self.log.close()

    def train_epoch(self, epoch: int, start: int) -> bool:
        """One epoch from step ``start``; returns False when ``train.max_steps`` ends the run."""
        t, o, env, spe = self.cfg.train, self.cfg.optim, self.env, self.steps_per_epoch
        meter, tic, samples, since_save, grad_norm = WindowMeans(), time.perf_counter(), 0, 0, float("nan")
        window = []  # (i, name, parts) of this accumulation window's micro-batches, parts on the device
        self.log.progress(spe, start, f"epoch {epoch}")
        for i, name, batch in self.stream.epoch(epoch, start):
            step = epoch * spe + i  # global step of this stage
            win_start = i - i % t.accum_iter
            win_size = min(t.accum_iter, spe - win_start)  # the last window of an epoch may be shorter
            sync = i + 1 == win_start + win_size
            lr = lr_at(epoch * spe + win_start, spe, self.base_lr, t.epochs, o.warmup_epochs, o.min_lr)
            p = universal_prob(step / spe, t.beta_start, t.beta_end, t.epochs)
            with self.stepper.accumulate(sync):
                with self.stepper.autocast():
                    out, n = self.forward(name, batch, step, p)
                parts = self.reduce_parts(out, name)
                self.stepper.backward(out["loss"] / win_size)
            window.append((i, name, parts))
            if sync:
                # the window's losses and the gradient norm are checked on the device and read in one host sync
                finite = torch.stack([torch.isfinite(v[0]).all() for _, _, v in window]).all()
                try:
                    grad_norm = self.stepper.step(lr, finite)
                except NonFiniteLossError as e:
                    raise self.non_finite(e, epoch, window) from None
                window = []
                since_save += win_size

            samples += n * env.world_size
            means, present = parts
            names = self.parts[name]
            values = dict(zip(names, means.unbind()))
            logged = self.scalar_names(name, values)
            flags = self.scalar_names(name, dict(zip(names, present.unbind())))
            meter.add(present={"train_loss_full": present[0], **flags}, train_loss_full=means[0], **logged)
            self.log.update()
            if (step + 1) % t.log_every == 0 or i + 1 == spe:  # the epoch's last steps are flushed too
                # x = the logged step's own position, int((step/spe)·1000) as in the original
                # scalars are the means since the previous record, lr and sensor_p those of this step
                rate = samples / (time.perf_counter() - tic)  # all ranks, since the last record
                scalars = meter.pop()
                self.log.log(step / spe, {**scalars, "lr": lr, "sensor_p": p, "samples_per_s": rate,
                             "grad_norm": float(grad_norm), "peak_mem_gb": peak_memory_gb(env.device)},
                             epoch=epoch, step=step + 1)
                self.log.postfix(loss=f"{scalars['train_loss_full']:.4f}", lr=f"{lr:.2e}", samples_per_s=f"{rate:.1f}")
                tic, samples = time.perf_counter(), 0
            if sync and i + 1 < spe:  # a mid-epoch window boundary (the epoch end is saved below)
                stop = t.max_steps is not None and step + 1 >= t.max_steps
                if stop or (t.ckpt_every_steps and since_save >= t.ckpt_every_steps):
                    self.save(epoch, epoch, i + 1, epoch_end=False)
                    since_save = 0
                if stop:
                    self.log.print(f"stopped at train.max_steps={t.max_steps}")
                    return False
        self.report_skipped(epoch)
        self.save(epoch, epoch + 1, 0, epoch_end=True)
        return t.max_steps is None or (epoch + 1) * spe < t.max_steps

    def report_skipped(self, epoch: int) -> None:
        """``data.on_error=skip``: print how many samples every rank's loaders skipped this epoch, and which, and
        append them to ``<output_dir>/skipped.jsonl``. Nothing is skipped silently."""
        records = []
        for name, loader in self.stream.loaders.items():
            ds = loader.dataset
            while not isinstance(ds, SkipErrors) and isinstance(getattr(ds, "dataset", None), Dataset):
                ds = ds.dataset  # through EpochSeeded and similar wrappers
            records += [dict(r, loader=name, rank=self.env.rank, epoch=epoch) for r in skipped_report(ds)]
        gathered = gather_to_main(records)
        if not self.env.is_main or not any(gathered):
            return
        flat = [r for rank_records in gathered for r in rank_records]
        self.log.print(f"epoch {epoch}: " + format_skipped(flat))
        with open(self.out / "skipped.jsonl", "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in flat)

    def reduce_parts(self, out: Dict[str, torch.Tensor], name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rank-averaged loss parts, left on the device: (means, present), one entry per declared part of loader
        ``name``; a part absent on some ranks is averaged over the ranks that have it (``present`` 0 where no rank
        has it, its mean then 0). The all-reduce makes a NaN on any rank visible to all, so every rank stops at the
        same step instead of the healthy ones hanging in the next collective."""
        names = self.parts[name]
        undeclared = [k for k, v in out.items() if k not in names and torch.is_tensor(v) and v.ndim == 0]
        if undeclared:
            raise ValueError(f"{self.objective_name} returned scalar part(s) {', '.join(undeclared)} for a "
                             f"{self.batch_kind(name)!r} batch ({name} loader) that its `parts` does not declare "
                             f"(declared: {', '.join(names)}); add them to its `parts` so that they are logged")
        have = torch.tensor([k in out for k in names], dtype=torch.float32, device=self.env.device)
        vals = torch.stack([out[k].detach().float() if k in out else have.new_zeros(()) for k in names])
        sums = all_reduce_mean(torch.cat([vals, have]))
        present = sums[len(names):] > 0
        means = torch.where(present, sums[:len(names)] / sums[len(names):].clamp_min(1e-30), torch.zeros_like(vals))
        return means, present.float()

    def non_finite(self, error: NonFiniteLossError, epoch: int, window) -> NonFiniteLossError:
        """The error to raise for a window whose check failed, naming the step, the batch and its loss parts (read
        from the device only now)."""
        spe = self.steps_per_epoch
        if error.kind == "loss":
            i, name, parts = next(w for w in window if not bool(torch.isfinite(w[2][0]).all()))
            values = self.part_values(name, parts)
            return NonFiniteLossError(
                f"non-finite loss at epoch {epoch}, step {i} of {spe} (global step {epoch * spe + i}), {name} batch: "
                + ", ".join(f"{k}={v}" for k, v in values.items()) + f"; {self.where_last_good()}", kind="loss")
        i, name, parts = window[-1]
        return NonFiniteLossError(f"{error}: epoch {epoch}, step {i} of {spe} (global step {epoch * spe + i}), {name} "
                                  f"batch, loss {self.part_values(name, parts)['loss']:.6g}; {self.where_last_good()}")

    def part_values(self, name: str, parts: Tuple[torch.Tensor, torch.Tensor]) -> Dict[str, float]:
        """(means, present) of :meth:`reduce_parts` -> {part: float} for the present parts (a host sync)."""
        means, present = (t.tolist() for t in parts)
        return {k: m for k, m, h in zip(self.parts[name], means, present) if h}

    def where_last_good(self) -> str:
        return f"the last good checkpoint is {self.last_saved}" if self.last_saved else "no checkpoint saved yet"

    def close(self) -> None:
        """Drop the DDP wrapper and the optimizer: they must be gone before the process group is destroyed."""
        self.log.close()
        self.ddp = self.stepper = self.optimizer = None


def compile_towers(model: nn.Module) -> int:
    """``train.compile=true``: compile every transformer stack of ``model`` in place (``nn.Module.compile``: the
    parameters, their names and hence checkpoints stay as they are; the Python around them -- sensor tokens, masking
    -- stays eager). Returns how many stacks were compiled."""
    stacks = [m for m in model.modules() if isinstance(m, Transformer)]
    for m in stacks:
        m.compile()
    return len(stacks)


def declared_parts(objective: Any, kinds: Mapping[str, str]) -> Dict[str, Tuple[str, ...]]:
    """Loader name -> the scalar parts ``objective`` declares for that loader's batch kind (``kinds``: loader name ->
    batch kind). An objective declares ``parts``, a mapping from batch kind to the names of the 0-d entries of its
    output dict, ``loss`` first. The list is fixed per kind so that every rank all-reduces the same vector, even
    when a part is absent on some rank (e.g. no camera image in its batch)."""
    declared = getattr(objective, "parts", None)
    if not isinstance(declared, Mapping):
        raise TypeError(f"{type(objective).__name__} declares no `parts` (a mapping from batch kind to the scalar "
                        f"parts its forward returns, 'loss' first); the trainer logs exactly what it declares")
    out = {}
    for name, kind in kinds.items():
        parts = tuple(declared.get(kind, ()))
        if not parts or parts[0] != "loss":
            raise ValueError(f"{type(objective).__name__}.parts[{kind!r}] (loader {name}) is {parts or 'missing'}; "
                             f"expected the names of its scalar parts, 'loss' first (declared kinds: "
                             f"{', '.join(declared)})")
        out[name] = parts
    return out


def launch(trainer_cls: Type[Trainer], schema: type, argv: Sequence[str]) -> None:
    """The body of a stage's ``main``: parse ``--config FILE ... key=value``, join the process group, train, and
    tear down in the order DDP needs."""
    module = trainer_cls.__module__
    if module == "__main__":  # run as python -m anytouch.train.stageN
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    files, overrides = parse_cli(argv, schema, sys.modules[trainer_cls.__module__].__doc__ or "",
                                 prog=f"python -m {module}")
    cfg = load_config(schema, files, overrides)
    env = init_distributed(cfg.run.device)
    trainer = None
    try:
        trainer = trainer_cls(cfg, env)
        trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        gc.collect()  # DDP holds reference cycles; collect it now, while the process group still exists
        shutdown()
