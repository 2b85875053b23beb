"""Encoder families of the benchmark: AnyTouch 1, AnyTouch 2 and generic ``timm`` / ``open_clip`` image backbones.

* AnyTouch 1 (Feng et al., ICLR 2025): any checkpoint ``anytouch.load_encoder`` reads; 3-frame clips, plain resize,
  ImageNet statistics, no background; tokens = post-LN [CLS, patches], pooled = proj(post-LN CLS).
* AnyTouch 2: the encoder in ``anytouch.models.anytouch2`` with its own ``preprocess`` (background difference,
  CLIP statistics, its frame count and stride); tokens = the raw last hidden state (CLS, sensor tokens, patches),
  which is what its attentive probes consume; pooled = proj(post-LN CLS).
* timm / open_clip: image backbones applied frame by frame (no upstream benchmark defines how they see clips; we
  average tokens and pooled features over the window). Random weights unless a checkpoint file is given; nothing is
  downloaded.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from ..checkpoint.io import read_safetensors, safe_load
from ..checkpoint.load import load_encoder
from ..preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from ..sensors import sensor_id
from .encoders import (EncoderSpec, InputContract, TactileEncoderPlugin, as_size, check_options, normalise,
                       register_family, require_checkpoint, resize, sensor_list, to_float)

__all__ = ["AnyTouch1Plugin", "AnyTouch2Plugin", "TimmPlugin", "OpenClipPlugin", "read_state_dict"]


def _sensor_ids(names: Sequence[str], mapping: Dict[str, int], universal: bool) -> List[int]:
    """Sensor names -> AnyTouch ids: ``universal`` gives -1 to all; ``mapping`` overrides the library's names."""
    if universal:
        return [-1] * len(names)
    return [int(mapping[n]) if n in mapping else sensor_id(n) for n in names]


class AnyTouch1Plugin(TactileEncoderPlugin):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        opt = check_options(spec, {"config": None, "frames": 3, "stride": 1, "sensor_ids": {}, "universal": False})
        self.encoder = load_encoder(require_checkpoint(spec), opt["config"])
        self.sensor_map, self.universal = dict(opt["sensor_ids"]), bool(opt["universal"])
        s = self.encoder.image_size
        self.contract = InputContract((s, s), IMAGENET_MEAN, IMAGENET_STD, False, int(opt["frames"]),
                                      int(opt["stride"]), "time")
        self.embed_dim = self.encoder.width
        self.pooled_dim = self.encoder.proj.out_features

    @torch.no_grad()
    def encode(self, frames, background, sensor):
        # the library's one evaluation path (uint8 resize, ImageNet statistics): the contract's size, mean and std
        x = self.encoder.preprocess(frames.to(self.device))  # (B, T, 3, S, S)
        ids = _sensor_ids(sensor_list(sensor, x.shape[0]), self.sensor_map, self.universal)
        raw, _, _ = self.encoder.forward_features(x, ids)  # (B, 1 + 5 + N, D)
        pooled = self.encoder.pool(raw, "cls")
        k = self.encoder.num_prefix_tokens
        tokens = self.encoder.norm_post(torch.cat([raw[:, :1], raw[:, k:]], dim=1))  # (B, 1 + N, D)
        return tokens.float(), pooled.float()


class AnyTouch2Plugin(TactileEncoderPlugin):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        try:
            at2 = importlib.import_module("anytouch.models.anytouch2")
        except ModuleNotFoundError as e:
            raise ImportError(f"{spec.source}: family 'anytouch2' needs anytouch.models.anytouch2, which this "
                              f"installation lacks ({e})") from e
        opt = check_options(spec, {"config": None, "sensor_ids": {}, "universal": False})
        enc = load_encoder(require_checkpoint(spec), opt["config"])
        if not isinstance(enc, at2.AnyTouch2Encoder):
            raise ValueError(f"{spec.source}: checkpoint {spec.checkpoint} holds a {type(enc).__name__}, not an "
                             "AnyTouch 2 encoder; use family 'anytouch1' for it")
        self.encoder = enc
        self.sensor_map, self.universal = dict(opt["sensor_ids"]), bool(opt["universal"])
        s = enc.image_size
        self.contract = InputContract((s, s), CLIP_MEAN, CLIP_STD, True, enc.num_frames, enc.frame_stride, "time")
        self.embed_dim = enc.width
        self.pooled_dim = enc.proj.out_features

    @torch.no_grad()
    def encode(self, frames, background, sensor):
        bg = background.to(self.device) if background is not None else None
        x = self.encoder.preprocess(frames.to(self.device), background=bg)
        ids = _sensor_ids(sensor_list(sensor, x.shape[0]), self.sensor_map, self.universal)
        tokens = self.encoder.forward_features(x, ids)
        return tokens.float(), self.encoder.pool(tokens, "cls").float()


def read_state_dict(path: Path, where: str) -> Dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a torch file (weights-only; a dict with a ``state_dict`` or
    ``model`` entry is unwrapped)."""
    sd = read_safetensors(path) if path.suffix == ".safetensors" else safe_load(path)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{where}: {path} is not a state dict of tensors")
    return sd


def _strict_load(module: nn.Module, sd: Dict[str, torch.Tensor], where: str) -> None:
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{where}: checkpoint does not match the model; missing {sorted(missing)[:10]} "
                         f"({len(missing)}), unexpected {sorted(unexpected)[:10]} ({len(unexpected)})")


class _PerFrame(TactileEncoderPlugin):
    """Frame-by-frame application of a 3-channel backbone; tokens and pooled features averaged over the window."""

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, frames, background, sensor):
        c = self.contract
        x = normalise(resize(to_float(frames, self.device), c.image_size), c.mean, c.std)  # (B, T, 3, H, W)
        b, t = x.shape[:2]
        tokens, pooled = self._embed(x.flatten(0, 1))
        tokens = tokens.reshape(b, t, *tokens.shape[1:]).mean(dim=1)
        return tokens.float(), pooled.reshape(b, t, -1).mean(dim=1).float()


def _stats(opt, default_mean, default_std, where):
    mean, std = opt["mean"] or default_mean, opt["std"] or default_std
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"{where}: mean and std need 3 values each, got {mean!r} and {std!r}")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


class TimmPlugin(_PerFrame):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        opt = check_options(spec, {"model": None, "model_kwargs": {}, "image_size": None, "frames": 1, "stride": 1,
                                   "mean": None, "std": None})
        if not opt["model"]:
            raise ValueError(f"{spec.source}: family 'timm' needs options.model (a timm model name)")
        import timm  # optional dependency, and slow to import: only this family needs it

        self.model = timm.create_model(opt["model"], pretrained=False, num_classes=0, **opt["model_kwargs"])
        if spec.checkpoint:
            sd = read_state_dict(require_checkpoint(spec), spec.source)
            # a classifier in the file is dropped by name: the benchmark trains its own heads
            head = self.model.pretrained_cfg.get("classifier") or "head"
            heads = tuple(head) if isinstance(head, (list, tuple)) else (head,)
            _strict_load(self.model, {k: v for k, v in sd.items() if not k.startswith(tuple(h + "." for h in heads))},
                         spec.source)
        cfg = self.model.pretrained_cfg
        size = as_size(opt["image_size"], spec.source) if opt["image_size"] else tuple(cfg["input_size"][1:])
        if "img_size" in opt["model_kwargs"] and not opt["image_size"]:
            size = as_size(opt["model_kwargs"]["img_size"], spec.source)
        mean, std = _stats(opt, cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD), spec.source)
        self.contract = InputContract(size, mean, std, False, int(opt["frames"]), int(opt["stride"]), "per_frame")
        self.embed_dim = self.pooled_dim = self.model.num_features

    def _embed(self, x):
        feats = self.model.forward_features(x)
        pooled = self.model.forward_head(feats, pre_logits=True)
        tokens = feats.flatten(2).transpose(1, 2) if feats.ndim == 4 else feats  # CNN maps -> (B, h·w, C)
        return tokens, pooled


class OpenClipPlugin(_PerFrame):
    def __init__(self, spec: EncoderSpec):
        super().__init__()
        opt = check_options(spec, {"model": None, "image_size": None, "frames": 1, "stride": 1, "mean": None,
                                   "std": None})
        if not opt["model"]:
            raise ValueError(f"{spec.source}: family 'open_clip' needs options.model (an open_clip model name)")
        import open_clip  # optional dependency, and slow to import: only this family needs it

        ckpt = str(require_checkpoint(spec)) if spec.checkpoint else None
        model = open_clip.create_model(opt["model"], pretrained=ckpt)
        self.visual = model.visual
        # ViTs can return their tokens; other towers give only the pooled embedding (used as a single token)
        self.has_tokens = hasattr(self.visual, "output_tokens")
        if self.has_tokens:
            self.visual.output_tokens = True
        size = as_size(opt["image_size"] or self.visual.image_size, spec.source)
        cfg = getattr(self.visual, "preprocess_cfg", {}) or {}
        mean, std = _stats(opt, cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD), spec.source)
        self.contract = InputContract(size, mean, std, False, int(opt["frames"]), int(opt["stride"]), "per_frame")
        self.pooled_dim = model.visual.output_dim
        self.embed_dim = self.visual.transformer.width if self.has_tokens else self.pooled_dim

    def _embed(self, x):
        if self.has_tokens:
            pooled, tokens = self.visual(x)
            return tokens, pooled
        pooled = self.visual(x)
        return pooled[:, None], pooled


register_family("anytouch1")(AnyTouch1Plugin)
register_family("anytouch2")(AnyTouch2Plugin)
register_family("timm")(TimmPlugin)
register_family("open_clip")(OpenClipPlugin)
