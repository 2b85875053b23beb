"""Runs the benchmark matrix (encoders × tasks × heads × budgets × seeds) and writes its results.

Each cell's result is written atomically to ``<out>/cells/<encoder>__<task>__<head>__b<budget>__s<seed>.json`` as it
finishes, with a key over everything that determines it (encoder spec, task, data settings, recipe, feature mode);
a rerun skips every cell whose file holds the same key, and builds an encoder only if one of its cells is left.
At the end ``results.json`` (every cell, the mean ± std summary, wall time per encoder), ``results.md`` and
``results.png`` (:mod:`.report`) cover the requested matrix.

Features come either from the on-disk cache (``cache=True``: each split encoded once per encoder and task,
:mod:`.features`), or live: the frozen encoder runs on every batch of every epoch, as the upstream probes do. Both
give the same heads, since the batches, seeds and features are the same.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from ..checkpoint.io import atomic_write_bytes
from ..probe.cache import cache_key
from .encoders import EncoderSpec, TactileEncoderPlugin, build_encoder, load_spec
from .features import Features, FeatureStore, collate, dtype_of, encode_batch, encode_dataset, feature_key
from . import metrics, tasks as task_catalogue
from .protocol import ProtocolConfig, Scorer, run_cell
from .report import write_report

__all__ = ["BenchConfig", "CachedSource", "LiveSource", "TaskScorer", "default_tasks", "default_scorer",
           "run_benchmark", "cell_name"]

DEFAULT_BUDGETS = (1.0, 0.33, 0.1, 0.01)


@dataclass
class BenchConfig:
    """One benchmark run. ``encoders``: encoder YAML files; ``tasks``: task names; ``root``: data root (None = the
    task modules' default); ``cache_dir``: feature cache (default ``<out>/features``); ``data_options``: extra
    keyword arguments of the dataset builder (e.g. ``num_samples`` and ``image_size`` of the synthetic twins)."""

    encoders: List[str]
    tasks: List[str]
    out: str
    synthetic: bool = False
    root: Optional[str] = None
    budgets: Tuple[float, ...] = DEFAULT_BUDGETS
    seeds: Tuple[int, ...] = (0, 1, 2)
    heads: Tuple[str, ...] = ("linear", "attentive")
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    cache: bool = True
    cache_dir: Optional[str] = None
    device: str = "cpu"
    feature_dtype: str = "float32"
    data_seed: int = 0
    data_options: Dict[str, Any] = field(default_factory=dict)
    encode_batch_size: int = 64
    num_workers: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class CachedSource:
    """Features held in memory (from the cache or one encoding pass)."""

    def __init__(self, feats: Features):
        self.feats, self.target, self.groups = feats, feats.target, feats.groups

    def batch(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.feats.tokens[idx], self.feats.pooled[idx]


class LiveSource:
    """Raw samples encoded by the frozen encoder at every request (the upstream probes' way)."""

    def __init__(self, dataset: Dataset, plugin: TactileEncoderPlugin, source_stride: int, dtype: torch.dtype,
                 views: int = 1):
        self.dataset, self.plugin, self.stride, self.dtype, self.views = dataset, plugin, source_stride, dtype, views
        samples = [dataset[i] for i in range(len(dataset))]
        self.target = torch.stack([torch.as_tensor(s["target"]) for s in samples])
        self.groups = [str(s.get("group", s.get("source", ""))) for s in samples]

    def batch(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return encode_batch(self.plugin, collate([self.dataset[int(i)] for i in idx]), self.stride, self.dtype,
                            self.views)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def cell_name(encoder: str, task: str, head: str, budget: float, seed: int) -> str:
    return f"{_safe(encoder)}__{_safe(task)}__{head}__b{budget:g}__s{seed}.json"


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(json.dumps(obj, indent=1, default=str).encode(), path)


def _task_dict(task: Any) -> Dict[str, Any]:
    return asdict(task) if hasattr(task, "__dataclass_fields__") else dict(vars(task))


def default_tasks() -> Tuple[Dict[str, Any], Callable[..., Dataset]]:
    """The task catalogue ({name: BenchTask}) and its dataset builder, from :mod:`anytouch.bench.tasks`."""
    return {t.name: t for t in task_catalogue.TASKS}, task_catalogue.build_task_dataset


class TaskScorer:
    """Every metric a task lists, computed by :func:`anytouch.bench.metrics.compute` (outputs as
    :func:`~anytouch.bench.protocol.predict` gives them), directions from its ``METRICS`` table."""

    def score(self, task: Any, pred: torch.Tensor, target: torch.Tensor, groups: Sequence[str]) -> Dict[str, float]:
        return {m: float(metrics.compute(m, pred, target, groups)) for m in task.metrics}

    def higher_is_better(self, metric: str) -> bool:
        return bool(metrics.METRICS[metric].higher_is_better)


def default_scorer() -> Scorer:
    """The scorer of the task catalogue (:class:`TaskScorer`)."""
    return TaskScorer()


class _Run:
    def __init__(self, cfg: BenchConfig, tasks: Dict[str, Any], build_dataset: Callable[..., Dataset],
                 scorer: Scorer):
        self.cfg, self.tasks, self.build_dataset, self.scorer = cfg, tasks, build_dataset, scorer
        self.out = Path(cfg.out)
        self.store = FeatureStore(Path(cfg.cache_dir) if cfg.cache_dir else self.out / "features")
        self.device = torch.device(cfg.device)
        self.data = {"root": cfg.root, "synthetic": cfg.synthetic, "seed": cfg.data_seed,
                     "options": dict(cfg.data_options)}

    def dataset(self, task: Any, split: str) -> Dataset:
        return self.build_dataset(task, split, root=self.cfg.root, synthetic=self.cfg.synthetic, budget=1.0,
                                  seed=self.cfg.data_seed, **self.cfg.data_options)

    def cell_key(self, spec: EncoderSpec, task: Any, head: str, budget: float, seed: int) -> str:
        c = self.cfg
        return cache_key({"spec": spec.to_dict(), "task": _task_dict(task), "data": self.data, "head": head,
                          "budget": budget, "seed": seed, "protocol": c.protocol.to_dict(),
                          "dtype": c.feature_dtype, "mode": "cached" if c.cache else "live"})

    def source(self, plugin: TactileEncoderPlugin, spec: EncoderSpec, task: Any, split: str):
        ds, dtype = self.dataset(task, split), dtype_of(self.cfg.feature_dtype)
        if not self.cfg.cache:
            return LiveSource(ds, plugin, task.stride, dtype, task.views), ds
        key, parts = feature_key(plugin, spec.to_dict(), task, split, ds, self.data, self.cfg.feature_dtype)
        label = f"{_safe(spec.name)}-{_safe(task.name)}-{split}"
        feats = self.store.load(key, label)
        if feats is None:
            feats = encode_dataset(plugin, ds, task.stride, self.cfg.encode_batch_size, self.cfg.num_workers, dtype,
                                   task.views)
            self.store.save(key, label, feats, parts)
        return CachedSource(feats), ds

    def encoder(self, path: str) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
        """Every cell of one encoder (run or read back) and its timing (None when nothing had to run)."""
        c, spec = self.cfg, load_spec(path)
        todo, cells = [], []
        for tname in c.tasks:
            task = self.tasks[tname]
            for head in c.heads:
                for budget in c.budgets:
                    for seed in c.seeds:
                        p = self.out / "cells" / cell_name(spec.name, tname, head, budget, seed)
                        key = self.cell_key(spec, task, head, budget, seed)
                        done = json.loads(p.read_text()) if p.is_file() else None
                        if done is not None and done.get("key") == key:
                            cells.append(done)
                        else:
                            todo.append((task, head, budget, seed, p, key))
        if not todo:
            return cells, {}
        t0 = time.perf_counter()
        plugin = build_encoder(spec, self.device)
        timing = {"build_s": time.perf_counter() - t0, "features_s": 0.0, "fit_s": 0.0, "cells_run": len(todo)}
        by_task: Dict[str, list] = {}
        for item in todo:
            by_task.setdefault(item[0].name, []).append(item)
        for tname, items in by_task.items():
            task = self.tasks[tname]
            t1 = time.perf_counter()
            (train, train_ds), (val, _), (test, _) = (self.source(plugin, spec, task, s)
                                                      for s in ("train", "val", "test"))
            timing["features_s"] += time.perf_counter() - t1
            labels = train_ds.labels() if hasattr(train_ds, "labels") else None
            if labels is None and task.kind != "regression":
                labels = train.target.tolist()
            for task_, head, budget, seed, p, key in items:
                t2 = time.perf_counter()
                idx = torch.tensor(task_catalogue.budget_indices(len(train.target), budget, seed, labels))
                res = run_cell(task, head, (plugin.embed_dim, plugin.pooled_dim * task.views), train, idx, val, test,
                               c.protocol, seed, self.scorer, self.device)
                fit_s = time.perf_counter() - t2
                timing["fit_s"] += fit_s
                cell = {"key": key, "encoder": spec.name, "family": spec.family, "task": tname, "kind": task.kind,
                        "primary": task.metrics[0], "higher_is_better": self.scorer.higher_is_better(task.metrics[0]),
                        "head": head, "budget": budget, "seed": seed, "fit_s": fit_s,
                        "contract": plugin.contract.to_dict(), "mode": "cached" if c.cache else "live", **res}
                _write_json(p, cell)
                cells.append(cell)
        timing["wall_s"] = time.perf_counter() - t0
        return cells, timing


def run_benchmark(cfg: BenchConfig, tasks: Optional[Sequence[Any]] = None,
                  build_dataset: Optional[Callable[..., Dataset]] = None,
                  scorer: Optional[Scorer] = None) -> Dict[str, Any]:
    """Run (or resume) the matrix of ``cfg`` and write results.json / results.md / results.png to ``cfg.out``.

    ``tasks``, ``build_dataset`` and ``scorer`` default to the task catalogue (:mod:`anytouch.bench.tasks`) and its
    metrics (:mod:`anytouch.bench.metrics`); tests pass their own. Returns the results dict written to results.json.
    """
    if tasks is None or build_dataset is None:
        catalogue, default_build = default_tasks()
        task_map = {t.name: t for t in tasks} if tasks is not None else catalogue
        build_dataset = build_dataset or default_build
    else:
        task_map = {t.name: t for t in tasks}
    unknown = [t for t in cfg.tasks if t not in task_map]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; expected some of: {', '.join(task_map)}")
    run = _Run(cfg, task_map, build_dataset, scorer or default_scorer())
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "timing.json"
    timings = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    cells: List[Dict[str, Any]] = []
    for path in cfg.encoders:
        enc_cells, timing = run.encoder(path)
        cells += enc_cells
        if timing:
            timings[load_spec(path).name] = timing
            _write_json(timing_path, timings)
    return write_report(out, cells, cfg.to_dict(), timings)
