"""Stage 2 of AnyTouch (Feng et al., ICLR 2025): touch-vision-text alignment, continued MAE and cross-sensor matching.

See docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 (initialisation), docs/original/recipe.md (what
trains, losses, four interleaved loaders, optimiser, logging) and
docs/original/architecture.md#universal-token-schedule (restarted for this stage). Run with torchrun (see
``train_stage2.sh``)::

    python -m anytouch.train.stage2 --config configs/stage2.yaml model=tiny data=synthetic \\
        model.stage1_checkpoint=log/output_stage1/checkpoint-last.pth

As in stage 1, every random draw is a function of (seed, epoch, step, rank, sample index), so a resumed run continues
exactly like an uninterrupted one, and the batch type of every step is the same on every rank (the original's
differed, docs/original/defects.md#24-per-rank-batch-schedule).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch

from ..checkpoint import build, load_clip_weights, read_checkpoint
from ..checkpoint.hf_clip import hf_to_stage2
from ..config import to_dict
from ..data import build_pretrain_set
from ..data.config import DataConfig
from ..data.device_aug import batch_to_device
from ..engine.data import build_loader
from ..engine.dist import DistEnv
from ..engine.interleave import Interleaved
from ..engine.rng import derive_seed
from ..engine.schedule import replace_with_universal
from ..engine.trainer import Trainer, launch
from ..losses import Stage2Objective
from ..models import AnyTouchModel, get_arch
from ..models.config import ArchConfig
from .config import ModelConfig, OptimConfig, RunConfig, TrainConfig

__all__ = ["Stage2Config", "LossConfig", "build_model", "load_stage1_touch", "prepare_batch", "Stage2Trainer", "main"]

# loader name -> dataset kind, in the original's loader order (docs/original/recipe.md#stage-2-batch-interleaving); the
# names give the tensorboard tags
LOADERS = {"image": "image", "image_cross": "cross_image", "video": "video", "video_cross": "cross_video"}
# the arch fields a stage-1 checkpoint must share with the stage-2 model (its towers may differ)
TOUCH_ARCH_FIELDS = ("projection_dim", "touch", "decoder", "num_sensors", "tokens_per_sensor", "num_frames",
                     "pred_frames")


@dataclass
class Stage2ModelConfig(ModelConfig):
    """``init``: ``clip`` = vision/text towers from ``clip_weights``
    (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2), ``random`` = random towers (tests). The touch branch
    (encoder + MAE decoder) comes from ``stage1_checkpoint``; without one, from CLIP as in stage 1 (``init=clip``) or
    random."""

    stage1_checkpoint: Optional[str] = None  # ours (kind stage1) or an original stage-1 file
    init_temp: float = 0.07  # logit_scale starts at ln(1 / init_temp)
    # (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 step 5)


@dataclass
class LossConfig:
    """Weights and options of the stage-2 losses; defaults are the original ``config.py``'s
    (docs/original/recipe.md#stage-2-alignment-loss, #stage-2-cross-sensor-matching)."""

    alpha_vt: float = 0.2  # touch-vision (the released script: 1.0)
    alpha_vl: float = 0.2  # vision-text
    alpha_lt: float = 1.0  # touch-text
    halve_touch_text: bool = False  # the original does not halve the touch-text InfoNCE
    # (docs/original/defects.md#16-touch-text-loss-not-halved)
    cross_alpha: float = 1.0  # matching loss weight (the released script: 0.1)
    gather: bool = False  # contrastive negatives from every rank, with gradient (the original: per GPU)
    max_logit_scale: Optional[float] = None  # clamp logit_scale (e.g. 4.6052 = ln 100); the original does not


@dataclass
class Stage2TrainConfig(TrainConfig):
    batch_size: Dict[str, int] = field(default_factory=lambda: {"image": 64, "image_cross": 32, "video": 64,
                                                                "video_cross": 32})


@dataclass
class Stage2Config:
    """``python -m anytouch.train.stage2 --config configs/stage2.yaml key.sub=value ...``"""

    model: Stage2ModelConfig = field(default_factory=Stage2ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: Stage2TrainConfig = field(default_factory=Stage2TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="log/output_stage2"))


# -- initialisation (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2) -----------------------------------------
def load_stage1_touch(path: str, arch: ArchConfig, log: Callable[[str], None] = print) -> Dict[str, torch.Tensor]:
    """The TouchMAE state dict (encoder + decoder) of a stage-1 checkpoint of any format: one that stores its
    architecture must share the touch fields with ``arch``; others are loaded as ``TouchMAE(arch)`` (strict keys and
    shapes)."""
    loaded = read_checkpoint(path)
    if loaded.kind != "stage1":
        raise ValueError(f"model.stage1_checkpoint={path} is a {loaded.kind!r} checkpoint; stage 2 starts from a "
                         f"stage-1 (MAE) checkpoint (this file: {loaded.format}), e.g. an anytouch stage-1 "
                         "checkpoint or an original AnyTouch stage-1 file")
    if loaded.arch is not None:
        diff = [k for k in TOUCH_ARCH_FIELDS if loaded.arch.get(k) != arch.to_dict()[k]]
        if diff:
            raise ValueError(f"model.stage1_checkpoint={path} has another touch architecture than model.arch="
                             f"{arch.name!r} (differs in: {', '.join(diff)}); pick the preset stage 1 was trained with")
    # a stored architecture was just checked on the touch fields (its towers may differ from the stage-2 model's)
    mae, report = build(loaded, "mae", None if loaded.arch is not None else arch)
    log(f"touch branch from {loaded.weights}: {report.summary()}")
    return mae.state_dict()


def build_model(cfg: Stage2ModelConfig, log: Callable[[str], None] = print) -> AnyTouchModel:
    """The stage-2 AnyTouchModel initialised per docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 (LoRA on the
    vision tower's q/k/v/out with the arch's rank and alpha; ``logit_scale`` = ln(1/init_temp)). Trainability is left to
    ``set_stage2_trainable``."""
    arch = get_arch(cfg.arch)
    model = AnyTouchModel(arch)
    touch = load_stage1_touch(cfg.stage1_checkpoint, arch, log) if cfg.stage1_checkpoint else None
    scale = math.log(1 / cfg.init_temp)
    if cfg.init == "clip":
        if not cfg.clip_weights:
            raise ValueError("model.init=clip needs model.clip_weights (a Hugging Face CLIP folder or weights file) "
                             "for the vision and text towers; use model.init=random for random towers (tests)")
        sd = load_clip_weights(cfg.clip_weights, "model.clip_weights")
        state, report = hf_to_stage2(sd, model.state_dict(), str(cfg.clip_weights), inflate=cfg.inflate,
                                     logit_scale=scale, touch_state=touch)
        model.load_state_dict(state)
        log(report.summary())
    elif cfg.init == "random":
        if touch is not None:
            model.touch.load_state_dict(touch)
        else:
            log("note: no model.stage1_checkpoint: the touch branch starts random")
        with torch.no_grad():
            model.logit_scale.fill_(scale)
    else:
        raise ValueError(f"model.init={cfg.init!r}; expected clip or random (the touch branch comes from "
                         "model.stage1_checkpoint; to continue a stage-2 run use run.resume)")
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing()
    return model


# -- one step's inputs --------------------------------------------------------------------------------------------
def prepare_batch(batch: Mapping[str, torch.Tensor], p: float, universal: torch.Generator,
                  mask: Optional[torch.Generator], num_patches: int, device: torch.device) -> Dict[str, torch.Tensor]:
    """Loader batch (uint8 frames + augmentation parameters) -> objective inputs on ``device``: touch frames
    augmented and camera images normalised there (:func:`~anytouch.data.device_aug.batch_to_device`), sensor ids replaced by the universal id -1 with probability
    ``p`` (one Bernoulli draw per sample from ``universal``, shared by anchor, positive and negative,
    docs/original/architecture.md#sensor-tokens), and for alignment batches the MAE noise (B, num_patches) drawn from
    ``mask``."""
    if "anchor" in batch:
        roles = ("anchor", "positive", "negative")
        ids = replace_with_universal([batch[f"{r}_sensor"] for r in roles], p, universal)
        out = {k: batch[k] for r in roles for k in (r, f"{r}_aug")}
        out.update({f"{r}_sensor": s for r, s in zip(roles, ids)})
    else:
        out = {k: batch[k] for k in ("touch", "touch_aug", "vision", "vision_flag", "text_ids", "text_mask",
                                     "text_flag")}
        out["sensor"] = replace_with_universal([batch["sensor"]], p, universal)[0]
        out["noise"] = torch.rand(len(batch["touch"]), num_patches, generator=mask)
    inputs = batch_to_device({k: v for k, v in out.items() if not k.endswith("sensor")}, device)
    # sensor ids stay on the host: the encoder checks their range there and copies them (no device sync)
    return {**inputs, **{k: v for k, v in out.items() if k.endswith("sensor")}}


class Stage2Trainer(Trainer):
    """Four loaders interleaved per epoch (docs/original/recipe.md#stage-2-batch-interleaving): alignment + MAE steps on
    image / video batches, matching steps on cross-sensor image / clip batches; the universal-sensor schedule of
    docs/original/architecture.md#sensor-tokens, restarted for this stage."""

    kind, title = "stage2", "stage 2"

    def __init__(self, cfg: Stage2Config, env: DistEnv):
        super().__init__(cfg, env)
        t = cfg.train
        if set(t.batch_size) != set(LOADERS):
            raise ValueError(f"train.batch_size must give a size for each of {tuple(LOADERS)}, got {t.batch_size}")
        model = build_model(cfg.model, log=self.log.print).to(env.device)
        model.set_stage2_trainable()  # the text tower stays frozen and out of the optimizer
        # (docs/original/recipe.md#stage-2-what-trains)
        size, vsize = model.arch.touch.image_size, model.arch.vision.image_size
        stream = Interleaved({name: self._loader(name, kind, size, vsize) for name, kind in LOADERS.items()},
                             cfg.run.seed)
        # the objective, not the model, goes into DDP: all three losses are computed inside its forward. Idle
        # parameters (the cross head in alignment steps; decoder, vision tower and logit scale in cross steps; the
        # vision tower on a rank without camera images in its batch) are handled by the base class's DDP setup.
        self.setup(model, Stage2Objective(model, mask_ratio=t.mask_ratio, **to_dict(cfg.loss)), stream)

    def _loader(self, name: str, kind: str, size: int, vsize: int):
        dataset = build_pretrain_set(self.cfg.data, 2, kind, size, vsize)
        try:
            return build_loader(dataset, self.cfg.train.batch_size[name], derive_seed(self.cfg.run.seed, name),
                                self.env, self.cfg.data.num_workers, prefetch_factor=self.cfg.data.prefetch_factor,
                                loaders=len(LOADERS))
        except ValueError as e:  # too few samples for one batch: name the setting to change
            raise ValueError(f"{kind} loader: {e}; lower train.batch_size.{name} or add data") from None

    def forward(self, name: str, batch: Dict[str, Any], step: int, p: float) -> Tuple[Dict[str, torch.Tensor], int]:
        inputs = prepare_batch(batch, p, self.generator("universal", step), self.generator("mask", step),
                               self.arch.touch.num_patches, self.env.device)
        return self.ddp(inputs), len(batch["anchor" if "anchor" in batch else "touch"])

    def batch_kind(self, name: str) -> str:
        return "cross" if LOADERS[name].startswith("cross") else "align"

    def scalar_names(self, name: str, parts: Dict[str, float]) -> Dict[str, float]:
        """The base class's names (``train_loss_image_cross``, ``train_loss_video_touch_text``, ``train_acc_...``),
        except ``logit_scale``, shared by every alignment step, logged as is."""
        out = super().scalar_names(name, {k: v for k, v in parts.items() if k != "logit_scale"})
        if "logit_scale" in parts:
            out["logit_scale"] = parts["logit_scale"]
        return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    launch(Stage2Trainer, Stage2Config, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
