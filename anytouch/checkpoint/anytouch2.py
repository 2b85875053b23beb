"""AnyTouch 2 weight files (GeWu-Lab/AnyTouch2, ICLR 2026), both directions; docs/anytouch2.md.

Upstream layouts recognised by content (never by file name):

* the released encoders ``checkpoint-{4,2}frames.pth``: a flat dict of tensors, every encoder key prefixed
  ``touch_mae_model.`` (a ``{"model": ...}`` wrapper and a ``module.`` prefix are accepted too);
* the probe files its downstream scripts write: ``{"model": {"tactile_model.*", "head.*"}, "args": Namespace, ...}``
  (the encoder part loads here, :mod:`anytouch.checkpoint.anytouch2_probe` adds the head);
* our safetensors export: the upstream key layout plus the architecture in the metadata.

Telltales (:func:`detect`): a 5-D ``touch_model.embeddings.patch_embedding.weight`` with RGB in-channels and a
``new_position_ids`` next to it. Sizes come from the shapes (width, patch, tube, depth, MLP, projection, frame count),
heads and image size from a CLIP ``config.json`` when given (else width / 64 and 224). ``new_position_ids`` must hold
arange and is then dropped; pre-training decoder / mask-token keys and anything outside the encoder are dropped and
named in the report; everything else must match the model exactly (a wrong or truncated file is an error).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from ..models.anytouch2 import AnyTouch2Encoder
from ..models.config import AnyTouch2Config, TowerCfg, read_clip_config
from .common import CheckpointMismatchError, ConversionReport, layer_indices, load_assign, on_meta
from .io import ORIGINAL_ALLOW, atomic_save, safe_load, save_safetensors, safetensors_metadata

__all__ = [
    "FORMAT", "PREFIX", "PROBE_PREFIX", "TABLE", "detect", "encoder_prefix", "unwrap", "config_from_shapes",
    "from_upstream", "load", "load_file", "detect_file", "build", "file_metadata", "to_upstream", "save_upstream", "export_safetensors", "convert",
]

FORMAT = "anytouch2"
PREFIX = "touch_mae_model."  # the released encoder files
PROBE_PREFIX = "tactile_model."  # the probe files the downstream scripts write
_PATCH = "touch_model.embeddings.patch_embedding.weight"
_POS_IDS = "new_position_ids"

# upstream key (after the prefix; exact, or a prefix ending in '.') -> our AnyTouch2Encoder key, in upstream order.
# The transformer blocks share Hugging Face CLIP's names, so ``encoder.layers.L.*`` maps by prefix alone.
TABLE = (
    ("sensor_token", "sensor_tokens"),
    ("touch_model.embeddings.class_embedding", "cls_token"),
    (_PATCH, "patch_embed.weight"),
    ("touch_model.embeddings.position_embedding.weight", "pos_embed"),
    ("touch_model.pre_layrnorm.", "norm_pre."),
    ("touch_model.encoder.layers.", "blocks."),
    ("touch_model.post_layernorm.", "norm_post."),
    ("touch_projection.weight", "proj.weight"),
)
_PRETRAIN_REASON = "pre-training decoder / mask token, not part of the encoder"


def unwrap(obj: Any) -> Optional[Mapping[str, Any]]:
    """The state dict inside ``obj`` (a flat dict or a ``{"model": ...}`` container), ``module.`` prefixes removed."""
    if not isinstance(obj, Mapping):
        return None
    sd = obj["model"] if isinstance(obj.get("model"), Mapping) else obj
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def encoder_prefix(sd: Mapping[str, Any]) -> Optional[str]:
    """The prefix before the AnyTouch 2 encoder keys (e.g. ``touch_mae_model.``), or None if there is no encoder."""
    found = [k[: -len(_PATCH)] for k, v in sd.items() if isinstance(k, str) and k.endswith(_PATCH)
             and isinstance(v, torch.Tensor) and v.ndim == 5 and v.shape[1] == 3]
    found = [p for p in found if p + _POS_IDS in sd and p + "video_patch_embedding.weight" not in sd]
    return found[0] if len(found) == 1 else None


def detect(obj: Any) -> bool:
    """True for an AnyTouch 2 encoder, probe or export: a 5-D RGB patch conv next to ``new_position_ids``."""
    sd = unwrap(obj)
    return sd is not None and encoder_prefix(sd) is not None


def _heads_and_image_size(config, width: int) -> Tuple[Dict[str, Any], Optional[int]]:
    """(vision fields given by ``config``, projection_dim or None).

    ``config``: a CLIP config.json path / folder or its parsed dict (only ``vision_config`` and ``projection_dim``
    are read), or an AnyTouch2Config.
    """
    if config is None:
        return {}, None
    if isinstance(config, AnyTouch2Config):
        t = config.touch
        return dict(hidden_size=t.width, num_hidden_layers=t.layers, num_attention_heads=t.heads,
                    intermediate_size=t.mlp_width, patch_size=t.patch_size, image_size=t.image_size,
                    layer_norm_eps=t.layer_norm_eps, hidden_act=t.act), config.projection_dim
    if isinstance(config, (str, Path, Mapping)):
        cfg = config if isinstance(config, Mapping) else read_clip_config(config)[1]
        vision = {k: v for k, v in (cfg.get("vision_config") or {}).items() if v is not None}
        return vision, cfg.get("projection_dim")
    raise TypeError(f"config for an AnyTouch 2 file must be a CLIP config.json path / folder (or its parsed dict) or "
                    f"an AnyTouch2Config, "
                    f"got {type(config).__name__}")


def config_from_shapes(sd: Mapping[str, torch.Tensor], config=None, source: str = "<state dict>",
                       metadata: Optional[Mapping[str, Any]] = None) -> AnyTouch2Config:
    """The architecture of an encoder state dict in our key names (:data:`TABLE` applied).

    Sizes come from the shapes; heads, LayerNorm eps, activation and image size from ``config`` (a CLIP
    ``config.json``; fields it omits default to eps 1e-5, exact GELU, 224, heads = width / 64) or from ``metadata``
    (an AnyTouch2Config dict stored with our export). A config that contradicts the shapes is an error.
    """
    patch = sd["patch_embed.weight"]
    width, tube, p = int(patch.shape[0]), int(patch.shape[2]), int(patch.shape[-1])
    given, proj = _heads_and_image_size(config, width)
    base = AnyTouch2Config.from_dict(metadata) if metadata else None
    bt = base.touch if base else None
    heads = given.get("num_attention_heads", bt.heads if bt else width // 64)
    image = int(given.get("image_size", bt.image_size if bt else 224))
    rows = int(sd["pos_embed"].shape[0]) - 1
    if image % p:
        raise CheckpointMismatchError(f"{source}: image_size {image} is not a multiple of the patch size {p}")
    per_tube = (image // p) ** 2
    if rows % per_tube:
        raise CheckpointMismatchError(
            f"{source}: the position table has {rows + 1} rows, which is not 1 + a whole number of {image // p}x"
            f"{image // p} grids; the image size is {image} (pass the CLIP config.json with the right image_size)")
    shapes = dict(hidden_size=width, patch_size=p, num_hidden_layers=len(layer_indices(sd, "blocks.")),
                  intermediate_size=int(sd["blocks.0.mlp.fc1.weight"].shape[0]) if "blocks.0.mlp.fc1.weight" in sd else 0)
    for key, value in shapes.items():
        if key in given and int(given[key]) != value:
            raise CheckpointMismatchError(f"{source}: the config says {key}={given[key]} but the weights have {value}")
    proj_rows = int(sd["proj.weight"].shape[0])
    if proj is not None and int(proj) != proj_rows:
        raise CheckpointMismatchError(f"{source}: the config says projection_dim={proj} but the weights have {proj_rows}")
    tower = TowerCfg(width=width, layers=shapes["num_hidden_layers"], heads=int(heads),
                     mlp_width=shapes["intermediate_size"], patch_size=p, image_size=image,
                     layer_norm_eps=float(given.get("layer_norm_eps", bt.layer_norm_eps if bt else 1e-5)),
                     act=_act(given.get("hidden_act", bt.act if bt else "gelu"), source))
    sensors = sd["sensor_tokens"]
    frames = tube * rows // per_tube
    return AnyTouch2Config(name=base.name if base else f"anytouch2-{frames}f", projection_dim=proj_rows, touch=tower,
                           num_frames=frames, tube_size=tube, num_sensors=int(sensors.shape[0]),
                           tokens_per_sensor=int(sensors.shape[1]),
                           frame_stride=base.frame_stride if base and base.num_frames == frames else None)


def _act(name: str, source: str) -> str:
    if name not in ("gelu", "quick_gelu"):
        raise ValueError(f"{source}: unsupported activation {name!r}; expected 'gelu' or 'quick_gelu'")
    return name


def _map_key(key: str) -> Optional[str]:
    for src, dst in TABLE:
        if key == src or (src.endswith(".") and key.startswith(src)):
            return dst + key[len(src):]
    return None


def from_upstream(sd: Mapping[str, Any], source: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], ConversionReport]:
    """Upstream state dict (any container / prefix) -> (our encoder keys, our key -> file key, report).

    Drops, naming each in the report: keys outside the encoder prefix, pre-training decoder / mask-token keys, and
    ``new_position_ids`` after checking that it holds arange over the position table. Any other key under the prefix
    that :data:`TABLE` does not map is an error.
    """
    prefix = encoder_prefix(sd)
    if prefix is None:
        raise ValueError(f"{source}: not an AnyTouch 2 file (no 5-D '{_PATCH}' with a '{_POS_IDS}' next to it)")
    report = ConversionReport(source, FORMAT)
    out: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            report.ignore(key, f"outside the encoder (no {prefix!r} prefix)" if prefix else "not an encoder key")
            continue
        rest = key[len(prefix):]
        if "decoder" in rest or "mask_token" in rest:
            report.ignore(key, _PRETRAIN_REASON)
            continue
        if rest == _POS_IDS:
            continue  # checked below, against the position table
        ours = _map_key(rest)
        if ours is None:
            raise CheckpointMismatchError(f"{source}: unknown AnyTouch 2 encoder key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise CheckpointMismatchError(f"{source}: {key!r} is a {type(value).__name__}, expected a tensor")
        out[ours], origin[ours] = value, key
    ids = sd[prefix + _POS_IDS]
    rows = out.get("pos_embed")
    n = int(rows.shape[0]) if isinstance(rows, torch.Tensor) else -1
    if not (isinstance(ids, torch.Tensor) and ids.shape == (1, n) and not ids.is_floating_point()
            and torch.equal(ids.reshape(-1).long(), torch.arange(n))):
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise CheckpointMismatchError(f"{source}: {prefix + _POS_IDS!r} must be arange({n}) of shape (1, {n}) to match "
                                      f"the position table, got {shape}")
    report.ignore(prefix + _POS_IDS, "verified to be arange over the position table; our encoder indexes it directly")
    return out, origin, report


def load(obj: Any, config=None, source: str = "<checkpoint>", metadata: Optional[Mapping[str, Any]] = None):
    """Build the encoder of an AnyTouch 2 file's content -> ``(AnyTouch2Encoder in eval mode, ConversionReport)``."""
    sd = unwrap(obj)
    if sd is None:
        raise ValueError(f"{source}: expected a state dict, got a {type(obj).__name__}")
    conv, origin, report = from_upstream(sd, source)
    for needed in ("patch_embed.weight", "pos_embed", "proj.weight", "sensor_tokens"):
        if needed not in conv:
            raise CheckpointMismatchError(f"{source}: the AnyTouch 2 encoder key for {needed!r} is missing; "
                                          "the file is truncated or not an AnyTouch 2 encoder")
    cfg = config_from_shapes(conv, config, source, metadata)
    model = load_assign(on_meta(lambda: AnyTouch2Encoder(cfg)), conv, source, origin,
                        hint="the file does not hold a complete AnyTouch 2 encoder of the inferred size")
    report.notes.append(f"{cfg.num_frames} frames (tube {cfg.tube_size}, default frame stride {cfg.frame_stride}), "
                        f"width {cfg.touch.width}, {cfg.touch.layers} layers, {cfg.touch.heads} heads, "
                        f"patch {cfg.touch.patch_size}, image {cfg.touch.image_size}")
    return model.eval(), report


def load_file(path: Union[str, Path], config=None):
    """Read an AnyTouch 2 file (upstream ``.pth``, probe file or our ``.safetensors``) -> ``(encoder, report)``."""
    path = Path(path)
    return load(safe_load(path, allow=ORIGINAL_ALLOW), config, str(path), metadata=file_metadata(path))


def detect_file(path: Union[str, Path]) -> bool:
    """True when ``path`` holds an AnyTouch 2 encoder, probe file or export (read weights-only; for the CLI)."""
    return detect(safe_load(path, allow=ORIGINAL_ALLOW))


def build(loaded, what: str, config=None, inflate: str = "repeat", merge_lora: bool = True):
    """The checkpoint-format registry's builder: ``loaded`` has ``content`` (the file as read) and ``weights`` (its
    path). ``what`` "model" or "encoder" gives the encoder (the family's only model); ``inflate`` / ``merge_lora``
    concern AnyTouch 1 files and are unused. Returns ``(AnyTouch2Encoder, ConversionReport)``."""
    if what not in ("model", "encoder"):
        raise ValueError(f"{loaded.weights}: an AnyTouch 2 file holds only an encoder (no MAE decoder); cannot make "
                         f"{what!r} from it")
    return load(loaded.content, config, str(loaded.weights), metadata=file_metadata(loaded.weights))


def file_metadata(path: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The AnyTouch2Config dict our ``.safetensors`` export stores, or None (other files carry no architecture)."""
    if Path(path).suffix != ".safetensors":
        return None
    meta = safetensors_metadata(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        return None
    return json.loads(meta["config"])


def to_upstream(encoder: AnyTouch2Encoder, prefix: str = PREFIX) -> "OrderedDict[str, torch.Tensor]":
    """Our encoder -> the released layout, in upstream key order, with ``new_position_ids`` (int64 arange) restored."""
    sd = encoder.state_dict()
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for src, dst in TABLE:
        for key, value in sd.items():
            if key == dst or (dst.endswith(".") and key.startswith(dst)):
                out[prefix + src + key[len(dst):]] = value.detach().cpu()
        if src == "sensor_token":  # upstream saves the position ids right after the sensor table
            out[prefix + _POS_IDS] = torch.arange(encoder.num_patches + 1, dtype=torch.int64).unsqueeze(0)
    if len(out) != len(sd) + 1:
        raise RuntimeError(f"internal error: TABLE maps {len(out) - 1} of the encoder's {len(sd)} keys")
    return out


def save_upstream(encoder: AnyTouch2Encoder, path: Union[str, Path], prefix: str = PREFIX) -> Path:
    """Write the released flat layout (atomically) that the upstream loaders read."""
    return atomic_save(dict(to_upstream(encoder, prefix)), path)


def export_safetensors(encoder: AnyTouch2Encoder, path: Union[str, Path]) -> Path:
    """Write the upstream key layout as ``.safetensors`` with the architecture (heads, image size, frame stride) in
    the metadata, so that it loads back without a config."""
    meta = {"format": FORMAT, "config": json.dumps(encoder.config.to_dict())}
    return save_safetensors(to_upstream(encoder), path, metadata=meta)


def convert(src: Union[str, Path], dst: Union[str, Path], to: Optional[str] = None, config=None,
            prefix: str = PREFIX) -> Tuple[Path, ConversionReport]:
    """Convert any AnyTouch 2 file (released encoder, probe file, our safetensors) to ``to``.

    ``to``: ``"safetensors"`` (default for a ``.safetensors`` destination) or ``"upstream"`` (the released flat
    ``.pth`` layout, keys prefixed with ``prefix``). Returns (written path, the load's report).
    """
    to = to or ("safetensors" if str(dst).endswith(".safetensors") else "upstream")
    encoder, report = load_file(src, config)
    if to == "safetensors":
        return export_safetensors(encoder, dst), report
    if to == "upstream":
        return save_upstream(encoder, dst, prefix), report
    raise ValueError(f"to={to!r}; expected 'safetensors' or 'upstream'")
