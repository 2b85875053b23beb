"""Architecture hyper-parameters, one dataclass per tower (docs/original/architecture.md#configurations).

Sizes come from a Hugging Face CLIP ``config.json`` (keys it omits take transformers' defaults, listed below) or
from a named preset: ``anytouch-l14`` (the paper model: DataComp CLIP ViT-L/14 + the 512-wide MAE decoder),
``small`` (a CPU demo size) and ``tiny`` (tests).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

__all__ = [
    "TowerCfg",
    "TextCfg",
    "DecoderCfg",
    "ArchConfig",
    "ARCH_PRESETS",
    "get_arch",
    "arch_from_hf_config",
    "arch_from_dict",
    "read_clip_config",
    "AnyTouch2Config",
    "ANYTOUCH2_FRAME_STRIDE",
]


@dataclass
class TowerCfg:
    """A CLIP ViT tower (the touch encoder and the vision tower share this shape)."""

    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_width: int = 4096
    patch_size: int = 14
    image_size: int = 224
    layer_norm_eps: float = 1e-5
    act: str = "gelu"  # "gelu" (exact erf) or "quick_gelu"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid


@dataclass
class TextCfg:
    """The CLIP text tower."""

    vocab_size: int = 49408
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_width: int = 3072
    context_length: int = 77
    layer_norm_eps: float = 1e-5
    act: str = "gelu"
    # HF semantics: eos_token_id == 2 selects the legacy pooling rule (pool at argmax of input_ids).
    eos_token_id: int = 2


@dataclass
class DecoderCfg:
    """The MAE decoder (an HF ViTConfig with these fields overridden; docs/original/architecture.md#configurations)."""

    width: int = 512
    layers: int = 8
    heads: int = 16
    mlp_width: int = 2048
    layer_norm_eps: float = 1e-12
    act: str = "gelu"


@dataclass
class ArchConfig:
    """Everything needed to build any AnyTouch model."""

    name: str = "anytouch-l14"
    projection_dim: int = 768
    touch: TowerCfg = field(default_factory=TowerCfg)
    vision: TowerCfg = field(default_factory=TowerCfg)
    text: TextCfg = field(default_factory=TextCfg)
    decoder: DecoderCfg = field(default_factory=DecoderCfg)
    num_sensors: int = 10  # rows of the sensor table; the last row is the universal token (id -1)
    tokens_per_sensor: int = 5
    num_frames: int = 3  # frames the patch embedding sees (images are repeated to this many)
    pred_frames: int = 4  # frames the video head outputs (num_frames reconstructed + 1 predicted)
    lora_rank: int = 16  # LoRA on the vision tower's q/k/v/out (0 = none)
    lora_alpha: float = 16.0
    logit_scale_init: float = math.log(1 / 0.07)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tiny() -> ArchConfig:
    tower = TowerCfg(width=64, layers=2, heads=2, mlp_width=128, patch_size=14, image_size=56)
    return ArchConfig(
        name="tiny",
        projection_dim=32,
        touch=tower,
        vision=dataclasses.replace(tower),
        text=TextCfg(width=32, layers=2, heads=2, mlp_width=64),
        decoder=DecoderCfg(width=32, layers=1, heads=2, mlp_width=64),
        lora_rank=4,
        lora_alpha=4.0,
    )


def _small() -> ArchConfig:
    tower = TowerCfg(width=128, layers=4, heads=4, mlp_width=512, patch_size=14, image_size=112)
    return ArchConfig(
        name="small",
        projection_dim=128,
        touch=tower,
        vision=dataclasses.replace(tower),
        text=TextCfg(width=128, layers=2, heads=4, mlp_width=512),
        decoder=DecoderCfg(width=64, layers=2, heads=4, mlp_width=256),
        lora_rank=4,
        lora_alpha=4.0,
    )


ARCH_PRESETS = {
    "anytouch-l14": ArchConfig,
    "small": _small,
    "tiny": _tiny,
}

# transformers' defaults for keys a CLIP config.json may omit (CLIPVisionConfig / CLIPTextConfig / CLIPConfig).
_HF_VISION_DEFAULTS = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
    patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, num_channels=3,
)
_HF_TEXT_DEFAULTS = dict(
    vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=49407,
)
_HF_TOP_DEFAULTS = dict(projection_dim=512, logit_scale_init_value=2.6592)


def _hf_tower(d: Mapping[str, Any]) -> TowerCfg:
    v = {**_HF_VISION_DEFAULTS, **{k: x for k, x in d.items() if x is not None}}
    if v["num_channels"] != 3:
        raise ValueError(f"CLIP vision config has num_channels={v['num_channels']}; AnyTouch expects 3")
    return TowerCfg(
        width=v["hidden_size"], layers=v["num_hidden_layers"], heads=v["num_attention_heads"],
        mlp_width=v["intermediate_size"], patch_size=v["patch_size"], image_size=v["image_size"],
        layer_norm_eps=v["layer_norm_eps"], act=_act(v["hidden_act"]),
    )


def _act(name: str) -> str:
    if name in ("gelu", "quick_gelu"):
        return name
    raise ValueError(f"unsupported activation {name!r} in CLIP config; expected 'gelu' or 'quick_gelu'")


def read_clip_config(path: Union[str, Path]) -> Tuple[Path, dict]:
    """``(config.json path, parsed dict)`` of a Hugging Face CLIP ``config.json`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"CLIP config not found: {path} (expected a Hugging Face CLIP config.json)")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path} is not a CLIP config.json ({type(e).__name__}: {e}); expected a Hugging Face CLIP "
            "config.json (a JSON file, not weights) or the folder holding it"
        ) from None
    if not isinstance(cfg, dict) or "vision_config" not in cfg:
        raise ValueError(f"{path} is not a CLIP config.json (no 'vision_config' key)")
    return path, cfg


def arch_from_hf_config(path: Union[str, Path], base: Union[str, ArchConfig] = "anytouch-l14") -> ArchConfig:
    """Read tower sizes from a Hugging Face CLIP ``config.json`` (or the folder holding it).

    The MAE decoder, sensor table and LoRA settings come from ``base`` (default: the paper's values).
    """
    path, cfg = read_clip_config(path)
    vision = _hf_tower(cfg.get("vision_config") or {})
    t = {**_HF_TEXT_DEFAULTS, **{k: x for k, x in (cfg.get("text_config") or {}).items() if x is not None}}
    text = TextCfg(
        vocab_size=t["vocab_size"], width=t["hidden_size"], layers=t["num_hidden_layers"],
        heads=t["num_attention_heads"], mlp_width=t["intermediate_size"], context_length=t["max_position_embeddings"],
        layer_norm_eps=t["layer_norm_eps"], act=_act(t["hidden_act"]), eos_token_id=t["eos_token_id"],
    )
    top = {**_HF_TOP_DEFAULTS, **{k: x for k, x in cfg.items() if k in _HF_TOP_DEFAULTS and x is not None}}
    b = get_arch(base) if isinstance(base, str) else base
    return dataclasses.replace(
        b, name=f"hf:{path.parent.name}", projection_dim=top["projection_dim"], touch=vision,
        vision=dataclasses.replace(vision), text=text,
    )


def arch_from_dict(d: Mapping[str, Any]) -> ArchConfig:
    """Rebuild an ArchConfig from :meth:`ArchConfig.to_dict` output (strict about unknown keys)."""
    known = {f.name for f in dataclasses.fields(ArchConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown architecture keys {sorted(unknown)}; expected a subset of {sorted(known)}")
    kw = dict(d)
    for name, cls in (("touch", TowerCfg), ("vision", TowerCfg), ("text", TextCfg), ("decoder", DecoderCfg)):
        if name in kw and isinstance(kw[name], Mapping):
            kw[name] = cls(**kw[name])
    return ArchConfig(**kw)


def get_arch(spec: Union[str, Path, ArchConfig, Mapping[str, Any]]) -> ArchConfig:
    """A preset name, a CLIP ``config.json`` path (or its folder), a dict, or an ArchConfig."""
    if isinstance(spec, ArchConfig):
        return spec
    if isinstance(spec, Mapping):
        return arch_from_dict(spec)
    s = str(spec)
    if s in ARCH_PRESETS:
        return ARCH_PRESETS[s]()
    p = Path(s)
    if p.exists():
        return arch_from_hf_config(p)
    raise ValueError(f"unknown architecture {s!r}; expected a preset ({', '.join(ARCH_PRESETS)}) or a CLIP config.json path")


# --- AnyTouch 2 (docs/anytouch2.md) --------------------------------------------------------------------------------

# The frame-sampling stride each released variant was trained with (a data convention, stored in no weights file).
ANYTOUCH2_FRAME_STRIDE = {4: 2, 2: 6}


def _vit_b16() -> TowerCfg:
    return TowerCfg(width=768, layers=12, heads=12, mlp_width=3072, patch_size=16, image_size=224)


@dataclass
class AnyTouch2Config:
    """The AnyTouch 2 touch encoder: a CLIP ViT over tubes of ``tube_size`` frames (ViT-B/16 at 224 by default).

    ``frame_stride`` is the sampling stride between the frames of a clip (not the temporal tube): by default the one
    the released variant of that frame count used (4 frames -> 2, 2 frames -> 6), else 1.
    """

    name: str = "anytouch2-b16"
    projection_dim: int = 512
    touch: TowerCfg = field(default_factory=_vit_b16)
    num_frames: int = 4
    tube_size: int = 2
    num_sensors: int = 20  # the last row is the universal token (id -1)
    tokens_per_sensor: int = 5
    frame_stride: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.touch, Mapping):
            self.touch = TowerCfg(**self.touch)
        if self.tube_size < 1 or self.num_frames < self.tube_size or self.num_frames % self.tube_size:
            raise ValueError(f"num_frames={self.num_frames} must be a positive multiple of tube_size={self.tube_size}")
        if self.touch.image_size % self.touch.patch_size:
            raise ValueError(f"image_size={self.touch.image_size} is not a multiple of patch_size={self.touch.patch_size}")
        if self.frame_stride is None:
            self.frame_stride = ANYTOUCH2_FRAME_STRIDE.get(self.num_frames, 1)

    @property
    def num_tubes(self) -> int:
        return self.num_frames // self.tube_size

    @property
    def num_patches(self) -> int:
        """Patch tokens of the whole clip: ``num_tubes`` grids of ``grid x grid``."""
        return self.num_tubes * self.touch.num_patches

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnyTouch2Config":
        """Inverse of :meth:`to_dict` (strict about unknown keys)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown AnyTouch 2 config keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)
