"""Config sections of the training entry points (stage 1 here; stage 2 and the probes reuse the sections).

Defaults are those of the original ``config.py`` (spec 6.1: 400 epochs, 40 warm-up epochs, weight decay 0.05,
blr 1e-3, seed 0); ``configs/stage1.yaml`` sets the released stage-1 recipe on top. Group files
``configs/model/<name>.yaml`` and ``configs/data/<name>.yaml`` fill the ``model`` and ``data`` sections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ..data.config import DataConfig

__all__ = ["ModelConfig", "OptimConfig", "TrainConfig", "RunConfig", "Stage1Config"]


@dataclass
class ModelConfig:
    """Which network and where its initial weights come from."""

    arch: str = "anytouch-l14"  # a preset (anytouch-l14, small, tiny) or a Hugging Face CLIP config.json / folder
    init: str = "clip"  # clip (spec 2.4) | random | checkpoint (an anytouch or original AnyTouch file)
    clip_weights: Optional[str] = None  # HF CLIP pytorch_model.bin / .safetensors, or the folder holding it
    checkpoint: Optional[str] = None  # weights for init=checkpoint
    grad_checkpointing: bool = False  # recompute encoder blocks in backward (less memory, ~30% more compute)
    inflate: str = "repeat"  # 2-D CLIP patch conv -> 3-frame conv: repeat (original, no /3) | mean (repeat / 3)


@dataclass
class OptimConfig:
    """AdamW and the LR schedule (spec 6.2)."""

    lr: Optional[float] = None  # absolute LR; when null, lr = blr * effective batch / 256
    blr: float = 1e-3
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    warmup_epochs: float = 40.0
    min_lr: float = 0.0
    clip_grad: Optional[float] = None  # max global grad norm (the original never clips)


@dataclass
class TrainConfig:
    """The loop. A "step" is one batch of one loader; optimizer updates happen every ``accum_iter`` steps."""

    epochs: int = 400
    batch_size: Dict[str, int] = field(default_factory=lambda: {"image": 64, "video": 64})  # per process, per loader
    accum_iter: int = 1
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 (with GradScaler) | fp32
    mask_ratio: float = 0.75
    beta_start: float = 0.0  # universal-sensor probability at the start ... (spec 1.4)
    beta_end: float = 0.0  # ... and at the end of training (the released scripts use 0.0 -> 0.75)
    max_steps: Optional[int] = None  # stop early after this many steps (smoke runs; the schedule still spans epochs)
    log_every: int = 20  # steps between tensorboard / log.jsonl records
    ckpt_every_steps: int = 0  # also save checkpoint-last.pth every this many steps (0 = only at epoch ends)


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
