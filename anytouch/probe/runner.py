"""``python -m anytouch.probe``: the linear probes of AnyTouch (Feng et al., ICLR 2025;
docs/original/probes.md#probe-datasets, #protocol).

For every task of ``probe.tasks`` and every protocol (``official``: the original's loop, :mod:`.official`;
``cached``: cached features and a hyper-parameter grid, :mod:`.cached`) this trains on the whole training set
(test curves) and, when ``probe.val_fraction > 0``, again on the training set minus a carved validation split (val
curves), then reports three numbers (:mod:`.selection`): the paper rule, the last epoch and the val-selected one.
The selection run doubles the official protocol's cost; ``probe.val_fraction=0`` skips it (and the third number).
Results go to ``<run.output_dir>/results.json`` and ``results.md`` (printed at the end); ``log.jsonl`` and the
tensorboard curves to ``<run.output_dir>/<task>/<protocol>[_val]/`` (curves under ``run.tb_dir`` when set).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..checkpoint import load_encoder
from ..config import load_config, parse_cli, save_config, to_dict
from ..data.skip import format_skipped, skipped_report
from ..engine.data import resolve_workers
from ..engine.dist import DistEnv, gather_to_main, init_distributed, shutdown
from ..engine.logging import RunLogger
from ..engine.optim import resolve_lr
from ..engine.rng import derive_seed, seed_all
from ..engine.step import resolve_precision
from ..models import TouchEncoder, get_arch
from ..provenance import provenance
from .cache import FeatureCache, checkpoint_identity, dataset_identity, encoder_identity
from .cached import cached_features, fit_grid, grid_points
from .config import PROTOCOLS, ProbeConfig
from .official import fit_official
from .report import combine_seeds, markdown_table, result_rows, write_results
from .selection import RunCurves
from .tasks import Recipe, Task, build_split, folder_override, get_task

__all__ = ["load_probe_encoder", "ProtocolRun", "TaskResult", "ProbeRunner", "main"]


@dataclass
class ProtocolRun:
    """One seed's run of a protocol on a task.

    Attributes:
        full: trained on the whole training set, with ``test`` curves (None on ranks other than 0 in the cached
            protocol, whose heads train on rank 0 alone).
        selection: trained on the training set minus the carved validation split, with ``val`` curves (None
            without ``probe.val_fraction``).
        points: (lr, weight decay) of each grid point; point 0 holds the paper's pair.
        timing: the cached protocol's ``extract_s``, ``extracted_images`` and ``fit_s`` (empty for the official one).
    """

    full: Optional[RunCurves]
    selection: Optional[RunCurves]
    points: List[Tuple[float, float]]
    timing: Dict[str, float] = field(default_factory=dict)


@dataclass
class TaskResult:
    """A task's results over every protocol: result rows (seeds combined), each protocol's seed-0 curves, and the
    timings (per protocol, plus ``skipped_samples`` when ``data.on_error=skip`` skipped any)."""

    rows: List[Dict[str, Any]] = field(default_factory=list)
    curves: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)
    timings: Dict[str, Any] = field(default_factory=dict)


def seed0_curves(run: ProtocolRun) -> Dict[str, List[float]]:
    """The curves of a run written to results.json: test accuracy / loss and training loss at grid point 0, and the
    val accuracy of the selection run."""
    curves = {"test_acc": run.full.evals["test"].acc[0].tolist(), "test_loss": run.full.evals["test"].loss[0].tolist(),
              "train_loss": run.full.train_loss[0].tolist()}
    if run.selection is not None:
        curves["val_acc"] = run.selection.evals["val"].acc[0].tolist()
    return curves


def load_probe_encoder(checkpoint: Optional[str], arch: Optional[str] = None, seed: int = 0) -> TouchEncoder:
    """The frozen touch encoder (eval mode, no gradients) of ``checkpoint``: any file or folder
    :func:`anytouch.api.load_encoder` reads (its architecture comes from the file; ``arch`` helps only original and
    CLIP files), or ``random:<preset>`` for a randomly initialised encoder (seeded with ``seed``)."""
    if not checkpoint:
        raise ValueError("probe.checkpoint is required: an anytouch / original AnyTouch / CLIP checkpoint file or "
                         "folder, or random:<preset> (e.g. random:tiny) for a smoke test")
    if checkpoint.startswith("random:"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = TouchEncoder(get_arch(checkpoint.split(":", 1)[1]))
    else:
        encoder = load_encoder(checkpoint, config=arch)
    return encoder.eval().requires_grad_(False)


class ProbeRunner:
    """Everything one ``python -m anytouch.probe`` invocation does; :meth:`run` returns the result rows (rank 0)."""

    def __init__(self, cfg: ProbeConfig, env: DistEnv):
        p = cfg.probe
        if p.protocol not in PROTOCOLS:
            raise ValueError(f"probe.protocol={p.protocol!r}; expected one of {PROTOCOLS}")
        if p.pooling not in ("cls", "global"):
            raise ValueError(f"probe.pooling={p.pooling!r}; expected 'cls' or 'global'")
        if not p.tasks:
            raise ValueError("probe.tasks is empty; name at least one of tag_material ... of2")
        self.tasks: List[Task] = [get_task(t) for t in p.tasks]
        if cfg.run.resume:
            raise ValueError("run.resume is not supported by the probes (a probe run is short); leave it empty")
        if cfg.optim.clip_grad is not None and p.protocol != "official":
            raise ValueError("optim.clip_grad is supported by the official protocol only (the original never clips)")
        self.cfg, self.env = cfg, env
        self.protocols = ["official", "cached"] if p.protocol == "both" else [p.protocol]
        self.out = Path(cfg.run.output_dir)
        self.date = datetime.now().isoformat(timespec="seconds")
        self.dtype = resolve_precision(p.precision, env.device)
        self.encoder = load_probe_encoder(p.checkpoint, p.arch, cfg.run.seed).to(env.device)
        self.ckpt_id = ({**checkpoint_identity(p.checkpoint, cfg.run.seed), "encoder": encoder_identity(self.encoder)}
                        if "cached" in self.protocols else None)
        self.cache = FeatureCache(p.cache_dir)
        self.lr = resolve_lr(cfg.optim.lr, cfg.optim.blr, p.batch_size)

    def log(self, msg: str) -> None:
        if self.env.is_main:
            print(msg, flush=True)

    def recipe(self, task: Task) -> Recipe:
        p, o, seed = self.cfg.probe, self.cfg.optim, self.cfg.run.seed
        return Recipe(pooling=p.pooling, sensor=p.sensor, epochs=p.epochs, batch_size=p.batch_size, lr=self.lr,
                      weight_decay=o.weight_decay, betas=tuple(o.betas), eps=o.eps, warmup_epochs=o.warmup_epochs,
                      min_lr=o.min_lr, seed=derive_seed(seed, "probe-data", task.name),
                      head_seed=derive_seed(seed, "probe-head", task.name))

    def dataset(self, name: str, split: str, val_fraction: float):
        extra = {"split_id": self.cfg.probe.feel_split} if name == "feel" else {}
        return build_split(self.cfg.data, name, split, self.encoder.image_size, val_fraction=val_fraction,
                           val_seed=self.cfg.probe.val_seed, **extra)

    def seed_recipes(self, recipe: Recipe) -> List[Recipe]:
        """``probe.seeds`` recipes: the first is ``recipe`` itself (so one seed is the plain run), the others draw
        the head initialisation, the data order and the augmented views from derived seeds."""
        return [recipe] + [dataclasses.replace(recipe, seed=derive_seed(recipe.seed, "repeat", k),
                                               head_seed=derive_seed(recipe.head_seed, "repeat", k))
                           for k in range(1, self.cfg.probe.seeds)]

    def splits(self, task: Task) -> Dict[str, Any]:
        """The task's datasets: ``train`` and ``test``, and with ``probe.val_fraction > 0`` the carved
        ``train_carved`` / ``val`` pair of the selection run."""
        p = self.cfg.probe
        sets = {"train": self.dataset(task.name, "train", 0.0), "test": self.dataset(task.name, "test", 0.0)}
        if p.val_fraction > 0:
            sets["train_carved"] = self.dataset(task.name, "train", p.val_fraction)
            sets["val"] = self.dataset(task.name, "val", p.val_fraction)
        return sets

    def _logger(self, task: Task, name: str) -> RunLogger:
        tb = self.cfg.run.tb_dir
        return RunLogger(self.out / task.name / name, self.env, Path(tb) / task.name / name if tb else None)

    @staticmethod
    def _fits(sets: Dict[str, Any], suffix: str) -> List[Tuple[str, str, str]]:
        """(training split, evaluation split, log folder) of the full run and, with a carved split, the selection
        run."""
        fits = [("train", "test", "")] + ([("train_carved", "val", "_val")] if "val" in sets else [])
        return [(train, ev, name + suffix) for train, ev, name in fits]

    # -- protocols: one seed's fits each ----------------------------------------------------------------------
    def _official(self, task: Task, recipe: Recipe, sets: Dict[str, Any], suffix: str) -> ProtocolRun:
        p = self.cfg.probe
        out = []
        for train, ev, name in self._fits(sets, suffix):
            logger = self._logger(task, "official" + name)
            try:
                out.append(fit_official(self.encoder, sets[train], {ev: sets[ev]}, task, recipe, env=self.env,
                                        precision=p.precision, num_workers=resolve_workers(self.cfg.data.num_workers),
                                        eval_batch_size=p.eval_batch_size, clip_grad=self.cfg.optim.clip_grad,
                                        logger=logger, log_every=p.log_every))
            finally:
                logger.close()
        return ProtocolRun(out[0], out[1] if len(out) > 1 else None, [(recipe.lr, recipe.weight_decay)])

    def _cached(self, task: Task, recipe: Recipe, sets: Dict[str, Any], contents: Dict[str, Dict],
                suffix: str) -> ProtocolRun:
        """``contents``: each split's :func:`dataset_identity` (computed once per task: it stats every file)."""
        p, d = self.cfg.probe, self.cfg.data
        root = "synthetic" if d.source == "synthetic" else os.path.abspath(d.root)
        feats, t0, images = {}, time.perf_counter(), 0
        for part, ds in sets.items():
            split = {"train_carved": "train", "val": "val"}.get(part, part)
            vf = p.val_fraction if part in ("train_carved", "val") else 0.0
            identity = {"checkpoint": self.ckpt_id, "dataset": {
                "name": task.name, "split": split, "root": root, "path": folder_override(d, task.name),
                "val_fraction": vf, "val_seed": p.val_seed}}
            feats[part], hit = cached_features(
                self.encoder, ds, task, recipe, identity=identity, views=p.views if part.startswith("train") else 1,
                env=self.env, dtype=self.dtype, batch_size=p.eval_batch_size, num_workers=resolve_workers(d.num_workers),
                cache=self.cache, label=f"{task.name}-{part}", log=self.log, content=contents[part])
            if not hit and feats[part] is not None:
                images += feats[part][0].shape[0] * feats[part][0].shape[1] * task.frames
        timing = {"extract_s": time.perf_counter() - t0, "extracted_images": images}
        if not self.env.is_main:  # the heads are trained on rank 0 alone; it holds every feature
            return ProtocolRun(None, None, [], timing)
        points = grid_points(p.grid.lr, p.grid.weight_decay, (recipe.lr, recipe.weight_decay))
        out, t1 = [], time.perf_counter()
        for train, ev, name in self._fits(sets, suffix):
            logger = self._logger(task, "cached" + name)
            try:
                out.append(fit_grid(feats[train], {ev: feats[ev]}, task, recipe, points, device=self.env.device,
                                    logger=logger, log_every=p.log_every))
            finally:
                logger.close()
        timing["fit_s"] = time.perf_counter() - t1
        return ProtocolRun(out[0], out[1] if len(out) > 1 else None, points, timing)

    def run_protocol(self, protocol: str, task: Task, recipe: Recipe, sets: Dict[str, Any]) -> List[ProtocolRun]:
        """Every seed's run of ``protocol`` on ``task`` (seed k > 0 logs to ``<protocol>[_val]_seed<k>/``)."""
        recipes = self.seed_recipes(recipe)
        suffixes = [f"_seed{k}" if k else "" for k in range(len(recipes))]
        if protocol == "official":
            return [self._official(task, rec, sets, sfx) for rec, sfx in zip(recipes, suffixes)]
        contents = {part: dataset_identity(ds) for part, ds in sets.items()}  # shared by the seeds
        return [self._cached(task, rec, sets, contents, sfx) for rec, sfx in zip(recipes, suffixes)]

    # -- the run ------------------------------------------------------------------------------------------------
    def run_task(self, task: Task) -> TaskResult:
        """Every protocol on ``task``: result rows (seeds combined), seed 0's curves and the timings (rank 0; the
        other ranks return no rows or curves)."""
        p = self.cfg.probe
        recipe, sets = self.recipe(task), self.splits(task)
        self.log(f"{task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()) + " samples; "
                 f"{p.pooling} pooling, sensor {p.sensor}, lr {recipe.lr:g}, wd {recipe.weight_decay:g}, "
                 f"batch {p.batch_size}, {p.epochs} epochs")
        result = TaskResult()
        for protocol in self.protocols:
            t0 = time.perf_counter()
            runs = self.run_protocol(protocol, task, recipe, sets)
            done = [r for r in runs if r.full is not None]
            result.timings[protocol] = {"wall_s": time.perf_counter() - t0,
                                        **(done[0].timing if done else runs[-1].timing)}
            if not done:
                continue
            rows = combine_seeds([result_rows(task.name, protocol, r.full, r.selection, r.points, p.checkpoint,
                                              self.date) for r in done])
            result.rows += rows
            result.curves[protocol] = seed0_curves(done[0])
            self.log(f"{task.name} {protocol}: " + ", ".join(
                f"{r['rule']} {r['accuracy']:.2f}%" + (f" ± {r['accuracy_std']:.2f}" if "n_seeds" in r else "")
                for r in rows) + f" ({result.timings[protocol]['wall_s']:.1f} s)")
        skipped = self.report_skipped(task, sets)
        if skipped:
            result.timings["skipped_samples"] = skipped
        return result

    def report_skipped(self, task: Task, sets: Dict[str, Any]) -> Dict[str, int]:
        """``data.on_error=skip``: print which samples of each split were unreadable (every rank's), and return
        {split: skipped loads}. A skipped sample was replaced by the next readable one, so its split's accuracy
        counts that neighbour twice; the count goes to results.json next to the numbers."""
        counts = {}
        for part, ds in sets.items():
            gathered = gather_to_main(skipped_report(ds))  # a collective: every rank, same order
            flat = [r for rank_records in gathered or [] for r in rank_records]
            if flat:
                counts[part] = sum(r["count"] for r in flat)
                self.log(f"{task.name}-{part}: {format_skipped(flat)}\n  (each replaced by the next readable "
                         f"sample of the split)")
        return counts

    def run(self) -> List[Dict[str, Any]]:
        if self.env.is_main:
            save_config(self.cfg, self.out / "config.yaml")
        self.log(f"probe: {self.cfg.probe.checkpoint} ({self.encoder.arch.name}), protocols {self.protocols}, "
                 f"{self.env.world_size} process(es) on {self.env.device}, {self.dtype}")
        rows, curves, timings = [], {}, {}
        for task in self.tasks:
            result = self.run_task(task)
            rows += result.rows
            curves[task.name], timings[task.name] = result.curves, result.timings
        if self.env.is_main:
            write_results(self.out, rows, {"date": self.date, "checkpoint": self.cfg.probe.checkpoint,
                                           "provenance": provenance(),
                                           "world_size": self.env.world_size, "device": str(self.env.device),
                                           "config": to_dict(self.cfg), "timings": timings, "curves": curves})
            self.log("\n" + markdown_table(rows) + f"\n\nwritten: {self.out / 'results.json'}, "
                     f"{self.out / 'results.md'}")
        return rows


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    files, overrides = parse_cli(sys.argv[1:] if argv is None else argv, ProbeConfig, __doc__ or "",
                                 prog="python -m anytouch.probe")
    cfg = load_config(ProbeConfig, files, overrides)
    env = init_distributed(cfg.run.device)
    seed_all(cfg.run.seed + env.rank)
    try:
        return ProbeRunner(cfg, env).run()
    finally:
        shutdown()
