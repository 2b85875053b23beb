"""The run config of ``python -m anytouch.probe`` (``configs/probe_*.yaml``).

Sections ``data`` (:class:`~anytouch.data.config.DataConfig`), ``optim`` and ``run`` are those of the training
entry points; ``probe`` holds the rest. ``optim.lr`` / ``optim.weight_decay`` are the paper's hyper-parameters
(the official protocol's, and grid point 0 of the cached protocol); ``optim.warmup_epochs`` and ``optim.min_lr``
are 0 for the probes (cosine from lr to 0).

The encoder's architecture comes from the checkpoint (``probe.checkpoint``); ``random:<preset>`` (e.g.
``random:tiny``) builds a randomly initialised encoder of an architecture preset, for smoke tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..data.config import DataConfig
from ..train.config import OptimConfig, RunConfig, check_ranges

__all__ = ["GridConfig", "ProbeSection", "ProbeConfig", "PROTOCOLS"]

PROTOCOLS = ("official", "cached", "both")


@dataclass
class GridConfig:
    """Hyper-parameter grid of the cached protocol (every lr x every weight decay, plus the paper's pair)."""

    lr: List[float] = field(default_factory=lambda: [1e-4, 2e-4, 5e-4, 1e-3, 2e-3])
    weight_decay: List[float] = field(default_factory=lambda: [0.0, 0.01, 0.05, 0.1])

    def __post_init__(self):
        check_ranges("probe.grid", self, {"lr": ">= 0", "weight_decay": ">= 0"})


@dataclass
class ProbeSection:
    tasks: List[str] = field(default_factory=lambda: ["tag_material"])  # tag_material ... of2, run in order
    protocol: str = "official"  # official | cached | both
    checkpoint: Optional[str] = None  # our / original stage-1 or stage-2 / CLIP file or folder, or random:<preset>
    arch: Optional[str] = None  # original / CLIP files only: a preset or CLIP config.json (default: from shapes)
    pooling: str = "cls"  # cls | global
    sensor: int = 0  # sensor token id for every sample (-1 = universal)
    epochs: int = 50
    batch_size: int = 128  # effective batch over all processes
    eval_batch_size: int = 256  # per process, also for feature extraction
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32
    val_fraction: float = 0.1  # share of the training set carved out for validation (0: no val-selected number)
    val_seed: int = 0
    seeds: int = 1  # runs per protocol with different head init / data order / views; >1 reports mean ± std
    feel_split: int = 3  # Feel: which split_<k>.npy holds the train/test objects (the original's --split, 3)
    views: int = 1  # cached protocol: augmented feature views per training image (epoch e uses view e mod views)
    grid: GridConfig = field(default_factory=GridConfig)
    cache_dir: Optional[str] = None  # default $ANYTOUCH_CACHE_DIR/probe_features or ~/.cache/anytouch/probe_features
    log_every: int = 20  # steps between train_loss / lr records

    def __post_init__(self):
        check_ranges("probe", self, {"epochs": ">= 1",
                                     "val_fraction": "in [0, 1)", "seeds": ">= 1", "views": ">= 1",
                                     "log_every": ">= 1", "feel_split": ">= 0"})


@dataclass
class ProbeConfig:
    """``python -m anytouch.probe --config configs/probe_tag.yaml probe.checkpoint=... data.root=...``"""

    probe: ProbeSection = field(default_factory=ProbeSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, warmup_epochs=0.0))
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="log/probe"))
