"""Tactile encoders as benchmark plug-ins: one protocol, one input contract per family, built from a YAML file.

A plug-in wraps a frozen encoder and owns its family's preprocessing, so every encoder sees the same raw inputs
(uint8 frames oldest first, a background frame, sensor names) and turns them into what it was trained on. The
contracts follow the families' released code: AnyTouch 1 (ImageNet statistics, plain resize, 3-frame clips, no
background), AnyTouch 2 (4 frames at stride 2, background difference, CLIP statistics), Sparsh (two frames 5 apart on
the channels, background difference, no normalisation), T3 (one image, per-dataset statistics) and generic image
backbones (frame by frame, window averaged).

An encoder YAML file holds::

    family: sparsh            # a key of FAMILIES
    name: sparsh-dino-base    # optional; defaults to the file's stem
    checkpoint: ${ANYTOUCH_WEIGHTS}/sparsh/dino_vitbase.ckpt   # $VARS expanded; relative to the YAML's folder
    options: {...}            # family-specific, checked by the family (unknown keys are errors)
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from ..engine.rng import seeded

__all__ = ["InputContract", "EncoderSpec", "TactileEncoderPlugin", "FAMILIES", "register_family", "load_spec",
           "build_encoder", "select_window", "to_float", "background_difference", "resize", "normalise",
           "check_options"]

Size = Tuple[int, int]


@dataclass(frozen=True)
class InputContract:
    """What an encoder expects of its input, written to the results next to every number.

    Attributes:
        image_size: (H, W) the frames are resized to.
        mean, std: per-channel statistics applied after scaling to [0, 1] (None: no normalisation).
        needs_background: whether the family subtracts a background frame (when the sample has one).
        frames: frames per sample the encoder consumes (its window).
        stride: frames between consecutive window frames, in the source's frame rate.
        channels: how the window is laid out: ``"time"`` (a clip axis), ``"stacked"`` (frames concatenated on the
            channels, newest first) or ``"per_frame"`` (each frame encoded alone, outputs averaged).
    """

    image_size: Size
    mean: Optional[Tuple[float, float, float]]
    std: Optional[Tuple[float, float, float]]
    needs_background: bool
    frames: int
    stride: int
    channels: str

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EncoderSpec:
    """A parsed encoder YAML file (see the module docstring)."""

    name: str
    family: str
    checkpoint: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "family": self.family, "checkpoint": self.checkpoint, "options": self.options}


class TactileEncoderPlugin(nn.Module):
    """The protocol every family implements.

    ``encode(frames, background, sensor) -> (tokens (B, N, D), pooled (B, P))``: ``frames`` uint8 (B, T, H, W, 3)
    oldest first with T = ``contract.frames`` (the runner cuts the window, :func:`select_window`), ``background``
    uint8 (B, H, W, 3) or None (no background for these samples), ``sensor`` one name per sample. Both outputs are
    float32 and computed without gradients on the plug-in's device; ``embed_dim`` = D, ``pooled_dim`` = P.
    """

    name: str
    family: str
    contract: InputContract
    embed_dim: int
    pooled_dim: int

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, frames: torch.Tensor, background: Optional[torch.Tensor],
               sensor: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not implement encode()")


# family name -> builder(spec) -> plug-in
FAMILIES: Dict[str, Callable[[EncoderSpec], TactileEncoderPlugin]] = {}
# families whose builders live in their own modules, imported on first use (heavy or optional dependencies)
_LAZY_FAMILIES = {"anytouch1": "anytouch.bench.families", "anytouch2": "anytouch.bench.families",
                  "timm": "anytouch.bench.families", "open_clip": "anytouch.bench.families",
                  "sparsh": "anytouch.bench.sparsh", "t3": "anytouch.bench.t3"}


def register_family(name: str):
    """Decorator: register ``builder(spec) -> TactileEncoderPlugin`` under ``name``."""
    def wrap(builder):
        FAMILIES[name] = builder
        return builder
    return wrap


def _builder(family: str, where: str) -> Callable[[EncoderSpec], TactileEncoderPlugin]:
    if family not in FAMILIES and family in _LAZY_FAMILIES:
        importlib.import_module(_LAZY_FAMILIES[family])
    if family not in FAMILIES:
        known = sorted(set(FAMILIES) | set(_LAZY_FAMILIES))
        raise ValueError(f"{where}: unknown encoder family {family!r}; expected one of: {', '.join(known)}")
    return FAMILIES[family]


def _expand(value: str, where: str) -> str:
    """``$VAR`` / ``${VAR}`` expanded from the environment; an unset variable is a ValueError."""
    out = os.path.expandvars(value)
    if "$" in out:
        raise ValueError(f"{where} {value!r} names an unset environment variable")
    return out


def load_spec(source: Union[str, Path, Mapping[str, Any]]) -> EncoderSpec:
    """Read an encoder YAML file (or a dict of the same keys). Relative checkpoint paths are taken from the file's
    folder. Raises ValueError naming the file and key for a missing or unknown key."""
    if isinstance(source, Mapping):
        raw, where, base, stem = dict(source), "<dict>", Path.cwd(), None
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"encoder config {path}: no such file")
        raw = yaml.safe_load(path.read_text()) or {}
        where, base, stem = str(path), path.parent, path.stem
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping with 'family', 'checkpoint', 'options'")
    unknown = set(raw) - {"family", "name", "checkpoint", "options"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; expected family, name, checkpoint, options")
    if "family" not in raw:
        raise ValueError(f"{where}: missing 'family'")
    name = raw.get("name") or stem
    if not name:
        raise ValueError(f"{where}: missing 'name'")
    ckpt = raw.get("checkpoint")
    if ckpt is not None:
        p = Path(_expand(str(ckpt), f"{where}: checkpoint")).expanduser()
        ckpt = str(p if p.is_absolute() else base / p)
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{where}: 'options' must be a mapping, got {type(options).__name__}")
    options = {k: _expand(v, f"{where}: options.{k}") if isinstance(v, str) else v for k, v in options.items()}
    return EncoderSpec(str(name), str(raw["family"]), ckpt, options, where)


def build_encoder(spec: Union[EncoderSpec, str, Path, Mapping[str, Any]], device: Union[str, torch.device] = "cpu",
                  seed: int = 0) -> TactileEncoderPlugin:
    """Build a plug-in from a spec (or a YAML path / dict), frozen, in eval mode, on ``device``. Randomly initialised
    parameters (a baseline without a checkpoint) are drawn under ``seed``, so the same spec gives the same weights."""
    spec = spec if isinstance(spec, EncoderSpec) else load_spec(spec)
    builder = _builder(spec.family, spec.source)
    with seeded(seed):
        plugin = builder(spec)
    plugin.name, plugin.family = spec.name, spec.family
    plugin.requires_grad_(False)
    return plugin.eval().to(device)


def check_options(spec: EncoderSpec, defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """``defaults`` overlaid with ``spec.options``; an option the family does not know is a ValueError."""
    unknown = set(spec.options) - set(defaults)
    if unknown:
        raise ValueError(f"{spec.source}: unknown option(s) {sorted(unknown)} for family {spec.family!r}; "
                         f"expected some of: {', '.join(sorted(defaults))}")
    return {**defaults, **spec.options}


def require_checkpoint(spec: EncoderSpec) -> Path:
    """The spec's checkpoint path, which must exist (families without random-init baselines)."""
    if not spec.checkpoint:
        raise ValueError(f"{spec.source}: family {spec.family!r} needs a 'checkpoint'")
    path = Path(spec.checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"{spec.source}: checkpoint {path} does not exist")
    return path


# -- shared preprocessing (on the plug-in's device) -----------------------------------------------------------
def select_window(frames: torch.Tensor, source_stride: int, want: int, stride: int) -> torch.Tensor:
    """Cut an encoder's window out of a sample's frames.

    frames: (..., T, H, W, 3) oldest first, consecutive frames ``source_stride`` source frames apart. Returns
    (..., want, H, W, 3): the frames ``k·stride`` source frames before the newest (k = want-1..0), each taken at the
    nearest available offset (clamped to the oldest frame). A single image is repeated ``want`` times.
    """
    t = frames.shape[-4]
    idx = []
    for k in range(want - 1, -1, -1):
        back = round(k * stride / max(source_stride, 1))
        idx.append(max(t - 1 - back, 0))
    return frames[..., idx, :, :, :]


def to_float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1] on ``device``."""
    if x.dtype != torch.uint8:
        raise TypeError(f"encoder inputs must be uint8 frames, got {x.dtype}")
    return x.to(device).movedim(-1, -3).float() / 255.0


def background_difference(x: torch.Tensor, bg: torch.Tensor, offset: float) -> torch.Tensor:
    """clamp(x - bg + offset, 0, 1) with x (B, T, 3, H, W) and bg (B, 3, H, W), both in [0, 1]; Sparsh uses an
    offset of 0.5 (then re-quantises to uint8), AnyTouch 2 130/255."""
    return (x - bg[:, None] + offset).clamp(0, 1)


def resize(x: torch.Tensor, size: Size, mode: str = "bilinear") -> torch.Tensor:
    """(..., 3, H, W) -> (..., 3, *size), antialiased, aspect ratio not kept."""
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=tuple(size), mode=mode, antialias=True, align_corners=False)
    return y.clamp(0, 1).reshape(*lead, *y.shape[-3:])


def normalise(x: torch.Tensor, mean: Optional[Sequence[float]], std: Optional[Sequence[float]]) -> torch.Tensor:
    """(..., 3, H, W) -> (x - mean) / std per channel (unchanged when mean is None)."""
    if mean is None:
        return x
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


def as_size(value: Union[int, Sequence[int]], where: str) -> Size:
    """An image-size option: an int (square) or [H, W]."""
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{where}: image_size must be an int or [H, W], got {value!r}")


def sensor_list(sensor: Sequence[str], batch: int) -> List[str]:
    names = [sensor] * batch if isinstance(sensor, str) else list(sensor)
    if len(names) != batch:
        raise ValueError(f"got {len(names)} sensor names for a batch of {batch}")
    return names
