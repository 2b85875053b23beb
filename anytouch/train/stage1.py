"""Stage 1 of AnyTouch (Feng et al., ICLR 2025): masked autoencoding of tactile images and 4-frame clips.

See docs/original/architecture.md (model, universal-sensor schedule, losses) and docs/original/recipe.md
(stage-1 objective, image/video interleaving, optimiser, schedule, logging). Run with torchrun (see
``train_stage1.sh``)::

    python -m anytouch.train.stage1 --config configs/stage1.yaml model=tiny data=synthetic run.resume=auto

Every random draw is a function of (seed, epoch, step, rank, sample index) -- batch order, shuffling, augmentation,
masks and universal-sensor replacement -- so a run resumed from any checkpoint continues exactly like an
uninterrupted one.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from ..checkpoint import build, load_clip_weights, read_checkpoint
from ..checkpoint.hf_clip import hf_to_stage1
from ..data import build_pretrain_set
from ..data.device_aug import touch_on_device
from ..engine.data import build_loader
from ..engine.dist import DistEnv
from ..engine.interleave import Interleaved
from ..engine.rng import derive_seed
from ..engine.schedule import replace_with_universal
from ..engine.trainer import NonFiniteLossError, Trainer, launch
from ..models import TouchMAE, get_arch
from .config import ModelConfig, Stage1Config

__all__ = ["build_model", "Stage1Trainer", "Stage1Config", "NonFiniteLossError", "main"]

LOADERS = ("image", "video")


def build_model(cfg: ModelConfig, log=print) -> TouchMAE:
    """A TouchMAE for ``cfg.arch``, initialised per ``cfg.init`` (clip: docs/original/checkpoints.md#clip-to-stage-1;
    random; checkpoint)."""
    model = TouchMAE(get_arch(cfg.arch))
    if cfg.init == "clip":
        if not cfg.clip_weights:
            raise ValueError("model.init=clip needs model.clip_weights (a Hugging Face CLIP folder or weights file); "
                             "use model.init=random to train from scratch")
        sd = load_clip_weights(cfg.clip_weights, "model.clip_weights")
        state, report = hf_to_stage1(sd, model.state_dict(), source=str(cfg.clip_weights), inflate=cfg.inflate)
        model.load_state_dict(state)
        log(report.summary())
    elif cfg.init == "checkpoint":
        if not cfg.checkpoint:
            raise ValueError("model.init=checkpoint needs model.checkpoint (an anytouch or original AnyTouch file)")
        _load_weights(model, cfg.checkpoint, log)
    elif cfg.init != "random":
        raise ValueError(f"model.init={cfg.init!r}; expected clip, random or checkpoint")
    if cfg.grad_checkpointing:
        model.encoder.set_grad_checkpointing()
    return model


def _load_weights(model: TouchMAE, path: str, log) -> None:
    """Initialise ``model`` from a stage-1/stage-2 checkpoint of any format that stores one; strict."""
    loaded = read_checkpoint(path)
    if loaded.kind == "clip":
        raise ValueError(f"{loaded.weights} is a {loaded.format} checkpoint; start from CLIP with model.init=clip "
                         f"model.clip_weights={path}")
    if loaded.arch is not None and loaded.arch != model.arch.to_dict():
        raise ValueError(f"{loaded.weights} holds a '{loaded.arch.get('name')}' model but model.arch="
                         f"{model.arch.name!r}; set model.arch to the checkpoint's architecture")
    # a file that stores its architecture was just checked against model.arch; the others are sized by it
    mae, report = build(loaded, "mae", None if loaded.arch is not None else model.arch)
    model.load_state_dict(mae.state_dict())
    log(report.summary())


class Stage1Trainer(Trainer):
    """Image and 4-frame video batches interleaved per epoch (docs/original/recipe.md#stage-1-batch-interleaving), MAE
    with mask ratio 0.75, the universal sensor schedule of docs/original/architecture.md#sensor-tokens."""

    kind, title = "stage1", "stage 1"

    def __init__(self, cfg: Stage1Config, env: DistEnv):
        super().__init__(cfg, env)
        t, seed = cfg.train, cfg.run.seed
        unknown, missing = sorted(set(t.batch_size) - set(LOADERS)), sorted(set(LOADERS) - set(t.batch_size))
        if unknown or missing:
            raise ValueError(f"train.batch_size: unknown key(s) {unknown}, missing key(s) {missing}; expected one size "
                             f"for each of: {', '.join(LOADERS)}")
        model = build_model(cfg.model, log=self.log.print).to(env.device)
        size, vsize = model.arch.touch.image_size, model.arch.vision.image_size
        stream = Interleaved({
            kind: build_loader(build_pretrain_set(cfg.data, 1, kind, size, vsize), t.batch_size[kind],
                               derive_seed(seed, kind), env, cfg.data.num_workers,
                               prefetch_factor=cfg.data.prefetch_factor, loaders=len(LOADERS))
            for kind in LOADERS
        }, seed)
        self.setup(model, model, stream)

    def forward(self, name: str, batch: Dict[str, Any], step: int, p: float) -> Tuple[Dict[str, torch.Tensor], int]:
        dev = self.env.device
        # uint8 (B,3,H,W) images or (B,4,3,H,W) clips, flipped / jittered / normalised after the copy, on the device
        touch = touch_on_device(batch["touch"], batch["touch_aug"], dev)
        sensor = replace_with_universal([batch["sensor"]], p, self.generator("universal", step))[0]
        noise = torch.rand(len(touch), self.arch.touch.num_patches, generator=self.generator("mask", step))
        # sensor ids stay on the host: the encoder checks their range there and copies them (no device sync)
        out = self.ddp(touch, sensor, mask_ratio=self.cfg.train.mask_ratio, noise=noise.to(dev, non_blocking=True))
        return out, len(touch)


def main(argv: Optional[Sequence[str]] = None) -> None:
    launch(Stage1Trainer, Stage1Config, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
