"""Config sections of the training entry points (stage 1 here; stage 2 and the probes reuse the sections).

Defaults are those of the original ``config.py`` (docs/original/recipe.md#commands-and-hyper-parameters: 400 epochs, 40
warm-up epochs, weight decay 0.05, blr 1e-3, seed 0); ``configs/stage1.yaml`` sets the released stage-1 recipe on top.
Group files ``configs/model/<name>.yaml`` and ``configs/data/<name>.yaml`` fill the ``model`` and ``data`` sections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..config import ConfigError
from ..data.config import DataConfig

__all__ = ["ModelConfig", "OptimConfig", "TrainConfig", "RunConfig", "Stage1Config", "check_ranges"]

_RANGES: Dict[str, Callable[[float], bool]] = {
    ">= 0": lambda v: v >= 0, "> 0": lambda v: v > 0, ">= 1": lambda v: v >= 1,
    "in [0, 1)": lambda v: 0 <= v < 1, "in [0, 1]": lambda v: 0 <= v <= 1,
}


def check_ranges(section: str, obj: Any, ranges: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` naming ``<section>.<field>``, its value and the expected range when a field of
    ``obj`` is outside ``ranges[field]`` (one of the keys of ``_RANGES``). None (an unset optional) passes; every
    element of a tuple or list is checked. Called from ``__post_init__``, so a bad value fails when the config
    loads, not steps into training (a NaN is outside every range)."""
    for name, expected in ranges.items():
        value = getattr(obj, name)
        values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        if not all(_RANGES[expected](v) for v in values):
            raise ConfigError(f"{section}.{name}={value!r} is out of range; expected {section}.{name} {expected}")


@dataclass
class ModelConfig:
    """Which network and where its initial weights come from."""

    arch: str = "anytouch-l14"  # a preset (anytouch-l14, small, tiny) or a Hugging Face CLIP config.json / folder
    init: str = "clip"  # clip (docs/original/checkpoints.md#clip-to-stage-1) | random | checkpoint (an anytouch or
    # original AnyTouch file)
    clip_weights: Optional[str] = None  # HF CLIP pytorch_model.bin / .safetensors, or the folder holding it
    checkpoint: Optional[str] = None  # weights for init=checkpoint
    grad_checkpointing: bool = False  # recompute encoder blocks in backward (less memory, ~30% more compute)
    inflate: str = "repeat"  # 2-D CLIP patch conv -> 3-frame conv: repeat (original, no /3) | mean (repeat / 3)


@dataclass
class OptimConfig:
    """AdamW and the LR schedule (docs/original/recipe.md#optimiser-and-schedule)."""

    lr: Optional[float] = None  # absolute LR; when null, lr = blr * effective batch / 256
    blr: float = 1e-3
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    warmup_epochs: float = 40.0
    min_lr: float = 0.0
    clip_grad: Optional[float] = None  # max global grad norm (the original never clips)

    def __post_init__(self):
        check_ranges("optim", self, {"lr": ">= 0", "blr": ">= 0", "weight_decay": ">= 0", "betas": "in [0, 1)",
                                     "eps": "> 0", "warmup_epochs": ">= 0", "min_lr": ">= 0", "clip_grad": "> 0"})


@dataclass
class TrainConfig:
    """The loop. A "step" is one batch of one loader; optimizer updates happen every ``accum_iter`` steps."""

    epochs: int = 400
    batch_size: Dict[str, int] = field(default_factory=lambda: {"image": 64, "video": 64})  # per process, per loader
    accum_iter: int = 1
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 (with GradScaler) | fp32
    mask_ratio: float = 0.75
    beta_start: float = 0.0  # universal-sensor probability at the start ...
    # (docs/original/architecture.md#sensor-tokens)
    beta_end: float = 0.0  # ... and at the end of training (the released scripts use 0.0 -> 0.75)
    max_steps: Optional[int] = None  # stop early after this many steps (smoke runs; the schedule still spans epochs)
    log_every: int = 20  # steps between tensorboard / log.jsonl records
    ckpt_every_steps: int = 0  # also save checkpoint-last.pth every this many steps (0 = only at epoch ends)
    # epoch checkpoints kept besides checkpoint-last.pth: the newest keep_last, and every keep_every-th
    # (checkpoint-<k·keep_every - 1>.pth, i.e. after every keep_every finished epochs; 0 = none of either kind)
    keep_last: int = 2
    keep_every: int = 5
    compile: bool = False  # torch.compile the transformer stacks of the towers (first steps slower: compiling)

    def __post_init__(self):
        # batch sizes are checked where every config section merges (anytouch.config); the ranges here
        check_ranges("train", self, {
            "epochs": ">= 1", "accum_iter": ">= 1", "mask_ratio": "in [0, 1)", "beta_start": "in [0, 1]",
            "beta_end": "in [0, 1]", "max_steps": ">= 1", "log_every": ">= 1", "ckpt_every_steps": ">= 0",
            "keep_last": ">= 0", "keep_every": ">= 0"})


@dataclass
class RunConfig:
    output_dir: str = "log/output_stage1"
    tb_dir: Optional[str] = None  # tensorboard folder (default: output_dir)
    seed: int = 0
    resume: Optional[str] = None  # null: fresh start | auto: newest checkpoint in output_dir | a checkpoint path
    device: str = "auto"  # auto | cuda | cpu


@dataclass
class Stage1Config:
    """``python -m anytouch.train.stage1 --config configs/stage1.yaml key.sub=value ...``"""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
