"""The original AnyTouch checkpoint layouts (GeWu-Lab/AnyTouch, ICLR 2025; docs/original/checkpoints.md#stage-1-file,
#stage-2-file), both directions.

* stage 1 (``TactileVideoMAE``, 533 keys at ViT-L/14): ``touch_model.*`` (an HF ``CLIPVisionTransformer``),
  ``video_patch_embedding`` (the 3-frame Conv3d actually used), ``sensor_token``, ``touch_projection`` and an HF-ViT
  MAE decoder (``touch_decoder_blocks.J.attention.attention.query`` ...).
* stage 2 (``CLIPModel``, 1317 keys): ``touch_mae_model.`` + the stage-1 keys, HF CLIP text and vision towers (the
  vision encoder in PEFT's LoRA layout ``vision_model.encoder.base_model.model.layers.L.self_attn.X_proj.
  {base_layer.weight, base_layer.bias, lora_A.default.weight, lora_B.default.weight}``), ``visual_projection``,
  ``text_projection``, ``logit_scale`` and ``cross_sensor_head``.

Files are ``torch.save`` dicts with the weights under ``"model"`` (plus ``optimizer``, ``epoch``, ``scaler`` and an
``argparse.Namespace`` under ``args``); load them with ``io.safe_load(path, allow=io.ORIGINAL_ALLOW)``.

Import (:func:`from_original`) maps onto our modules; LoRA is merged as W = W_base + (alpha/r)·B·A unless asked to
keep it. Ignored on import, with the reason in the report: the unused 2-D patch conv, ``video_position_embedding``,
``position_ids`` buffers and ``sensor_token_proj``. Export (:func:`to_original_stage1`, :func:`to_original_stage2`)
writes them back (2-D conv = ``patch_embed.weight.sum(1)``, the position copy) in the original key order.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..models import AnyTouchModel, TouchEncoder, TouchMAE
from ..models.config import ArchConfig, DecoderCfg, arch_from_hf_config, get_arch
from .common import (CheckpointMismatchError, ConfigLike, ConversionReport, check_state_dict, explicit_arch,
                     layer_indices, load_assign, on_meta)
from .files import LoadedCheckpoint
from .hf_clip import POSITION_IDS_REASON, TEXT_TABLE, VISION_TABLE, text_from_shapes, tower_from_shapes

__all__ = [
    "detect_stage1", "detect_stage2", "unwrap_container", "from_original", "merge_peft_vision",
    "arch_from_original", "build", "to_original_stage1", "to_original_stage2", "STAGE1_TABLE", "DECODER_BLOCK_TABLE",
]

S2 = "touch_mae_model."
PEFT = "vision_model.encoder.base_model.model.layers."

# original stage-1 key (exact, or a prefix ending in '.') -> our TouchMAE key
STAGE1_TABLE = (
    ("decoder_pos_embed", "decoder_pos_embed"),
    ("mask_token", "mask_token"),
    ("sensor_token", "encoder.sensor_tokens"),
    ("touch_model.embeddings.class_embedding", "encoder.cls_token"),
    ("touch_model.embeddings.position_embedding.weight", "encoder.pos_embed"),
    ("touch_model.pre_layrnorm.", "encoder.norm_pre."),
    ("touch_model.encoder.layers.", "encoder.blocks."),
    ("touch_model.post_layernorm.", "encoder.norm_post."),
    ("touch_projection.weight", "encoder.proj.weight"),
    ("video_patch_embedding.weight", "encoder.patch_embed.weight"),
    ("decoder_embed.", "decoder_embed."),
    ("touch_decoder_blocks.", "decoder_blocks."),  # block suffixes via DECODER_BLOCK_TABLE
    ("decoder_norm.", "decoder_norm."),
    ("decoder_pred.", "head_image."),
    ("decoder_pred_video.", "head_video."),
)
# HF ViTLayer suffix -> our Block suffix, in the original state-dict order
DECODER_BLOCK_TABLE = (
    ("attention.attention.query.", "self_attn.q_proj."),
    ("attention.attention.key.", "self_attn.k_proj."),
    ("attention.attention.value.", "self_attn.v_proj."),
    ("attention.output.dense.", "self_attn.out_proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
    ("layernorm_before.", "layer_norm1."),
    ("layernorm_after.", "layer_norm2."),
)
# stage-2 keys outside touch_mae_model. and the CLIP towers
STAGE2_EXTRA = (("logit_scale", "logit_scale"), ("cross_sensor_head.", "cross_head."))

STAGE2_TOWER_TABLE = (tuple((s, "vision." + d) for s, d in VISION_TABLE) + tuple((s, "text." + d) for s, d in TEXT_TABLE)
                      + STAGE2_EXTRA)

STAGE1_IGNORED = {
    "touch_model.embeddings.patch_embedding.weight": "unused 2-D patch conv; the 3-frame video_patch_embedding is the one used (docs/original/architecture.md#patch-embedding)",
    "video_position_embedding.weight": "unused copy of the position embedding (docs/original/architecture.md#patch-embedding)",
    "sensor_token_proj.weight": "unused --new_decoder_sensor_token variant (docs/original/architecture.md#unused-variants)",
}
_POSITION_IDS = re.compile(r"(^|\.)position_ids$")
_PEFT_KEY = re.compile(r"^(?P<layer>\d+\.self_attn\.[qkvout]+_proj\.)(?P<what>base_layer\.(weight|bias)|lora_[AB]\.default\.weight)$")
_ATTN = ("k_proj", "v_proj", "q_proj", "out_proj")  # HF CLIPAttention creation order


def detect_stage1(sd: Mapping[str, object]) -> bool:
    return "video_patch_embedding.weight" in sd and "touch_model.embeddings.class_embedding" in sd


def detect_stage2(sd: Mapping[str, object]) -> bool:
    return S2 + "video_patch_embedding.weight" in sd


def unwrap_container(obj: object) -> Mapping[str, torch.Tensor]:
    """The original files keep the weights under ``"model"`` (next to optimizer, epoch, scaler, args)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        return obj["model"]
    if isinstance(obj, Mapping):
        return obj
    raise TypeError(f"expected a state dict or a dict with 'model', got {type(obj).__name__}")


def _rename(key: str, table) -> Optional[str]:
    for src, dst in table:
        if key == src or (src.endswith(".") and key.startswith(src)):
            return dst + key[len(src):]
    return None


def _stage1_key(key: str) -> Optional[str]:
    out = _rename(key, STAGE1_TABLE)
    if out is not None and out.startswith("decoder_blocks."):
        j, rest = out[len("decoder_blocks."):].split(".", 1)
        suffix = _rename(rest, DECODER_BLOCK_TABLE)
        return None if suffix is None else f"decoder_blocks.{j}.{suffix}"
    return out


def merge_peft_vision(sd: Mapping[str, torch.Tensor], scale: Optional[float], report: ConversionReport):
    """PEFT-wrapped ``vision_model.encoder.base_model.model.layers.*`` -> plain HF CLIP vision keys.

    ``scale`` = alpha / r: merge as W = W_base + scale·B·A (biases unchanged). ``scale=None`` keeps the LoRA
    matrices as ``...X_proj.lora_A`` / ``lora_B`` (our LoRALinear names). Other keys pass through unchanged.
    """
    out: Dict[str, torch.Tensor] = {}
    lora: Dict[str, Dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if not k.startswith(PEFT):
            out[k] = v
            continue
        rest = k[len(PEFT):]
        m = _PEFT_KEY.match(rest)
        plain = "vision_model.encoder.layers." + rest
        if m is None:
            out[plain] = v
        elif m["what"].startswith("base_layer"):
            out["vision_model.encoder.layers." + m["layer"] + m["what"][len("base_layer."):]] = v
        else:
            lora.setdefault(m["layer"], {})[m["what"][5]] = v
    for layer, ab in lora.items():
        if set(ab) != {"A", "B"}:
            raise CheckpointMismatchError(f"{report.source}: {PEFT}{layer} has lora_{list(ab)[0]} without its pair")
        key = "vision_model.encoder.layers." + layer
        if scale is None:
            out[key + "lora_A"], out[key + "lora_B"] = ab["A"], ab["B"]
            continue
        w = out[key + "weight"]
        if ab["B"].shape[0] != w.shape[0] or ab["A"].shape[1] != w.shape[1]:
            raise CheckpointMismatchError(f"{report.source}: LoRA of {key} has A {tuple(ab['A'].shape)}, "
                                          f"B {tuple(ab['B'].shape)} for a weight of shape {tuple(w.shape)}")
        out[key + "weight"] = w + (ab["B"].to(w.dtype) @ ab["A"].to(w.dtype)) * scale
    if lora:
        what = f"merged into the base weights (W + {scale:g}*B*A)" if scale is not None else "kept as LoRA parameters"
        report.notes.append(f"vision LoRA of {len(lora)} projections {what}")
    return out


def _target_root(target: Mapping[str, object]) -> str:
    """Our key prefix of the touch encoder in ``target``: '' (TouchEncoder), 'encoder.' (TouchMAE), 'touch.encoder.'."""
    for root in ("touch.encoder.", "encoder.", ""):
        if root + "cls_token" in target and root + "sensor_tokens" in target:
            return root
    raise ValueError("target state dict is not a TouchEncoder, TouchMAE or AnyTouchModel state dict")


def from_original(
    sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], source: str = "<state dict>",
    lora_scale: Optional[float] = 1.0,
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Original stage-1 / stage-2 weights -> a state dict for ``target`` (strict-loadable).

    Args:
        sd: the original state dict (``unwrap_container`` of the file).
        target: the state dict of the module to load: ``AnyTouchModel`` (stage-2 files; stage-1 files only into a
            model built with ``towers=False``), ``TouchMAE`` or ``TouchEncoder``; keys of the file that the target
            does not have are reported as ignored.
        source: file name for messages.
        lora_scale: alpha / r used to merge the vision LoRA; ``None`` keeps LoRA A/B (target must have LoRA).

    Returns:
        ``(state_dict, report)``.
    """
    stage2 = detect_stage2(sd)
    if not stage2 and not detect_stage1(sd):
        raise ValueError(f"{source} is not an original AnyTouch stage-1/stage-2 state dict "
                         f"(no 'video_patch_embedding.weight' or '{S2}video_patch_embedding.weight')")
    report = ConversionReport(source, "original_stage2" if stage2 else "original_stage1")
    root = _target_root(target)
    full = root == "touch.encoder."  # an AnyTouchModel (with or without towers)
    towers = any(k.startswith("vision.") for k in target)
    if towers and not stage2:
        raise ValueError(f"{source} is a stage-1 checkpoint: it has no vision/text towers; build the model with "
                         "towers=False, or initialise the towers from CLIP (checkpoint.hf_clip.hf_to_stage2 with touch_state=)")
    conv: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    what = {"": "TouchEncoder", "encoder.": "TouchMAE"}.get(root, "AnyTouchModel (built without towers)")
    not_here = f"not part of the {what} being loaded"
    touch_prefix = S2 if stage2 else ""
    if stage2 and towers:
        rest = merge_peft_vision({k: v for k, v in sd.items() if not k.startswith(S2)}, lora_scale, report)
        for k, v in rest.items():
            if _POSITION_IDS.search(k):
                report.ignore(k, POSITION_IDS_REASON)
                continue
            dst = _rename(k, STAGE2_TOWER_TABLE)
            if dst is None:
                raise CheckpointMismatchError(f"{source}: unexpected key {k!r} in an original stage-2 checkpoint")
            conv[dst], origin[dst] = v, k
    elif stage2:
        for k in sd:
            if not k.startswith(S2):
                report.ignore(k, not_here)
    # the touch branch: our TouchMAE key `m` lives at target key `mae_root + m`
    mae_root = "touch." if full else ""
    for k, v in sd.items():
        if not k.startswith(touch_prefix):
            continue
        rel = k[len(touch_prefix):]
        if rel in STAGE1_IGNORED:
            report.ignore(k, STAGE1_IGNORED[rel])
            continue
        if _POSITION_IDS.search(rel):
            report.ignore(k, POSITION_IDS_REASON)
            continue
        ours = _stage1_key(rel)
        if ours is None:
            raise CheckpointMismatchError(f"{source}: unexpected key {k!r} in an original stage-{2 if stage2 else 1} checkpoint")
        if root == "" and not ours.startswith("encoder."):
            report.ignore(k, not_here)
            continue
        dst = mae_root + ours if root != "" else ours[len("encoder."):]
        conv[dst], origin[dst] = v, k
    check_state_dict(conv, target, source, origin)
    return conv, report


# ----------------------------------------------------------------------------------------------- arch from shapes
def arch_from_original(sd: Mapping[str, torch.Tensor], config: Union[None, str, ArchConfig, Mapping] = None,
                       towers: bool = True) -> ArchConfig:
    """The architecture of an original checkpoint.

    ``config`` may be an ArchConfig / preset name / dict (used as is; the final shape check validates it), or the
    path of a CLIP ``config.json`` (or its folder), which supplies the towers (including head counts) while the
    decoder, sensor table, frame counts and LoRA rank come from the tensors. Without ``config`` everything comes
    from the tensors: tower sizes as in :func:`hf_clip.tower_from_shapes` (heads = width // 64), decoder
    width / depth / MLP width from its tensors with 16 heads (docs/original/architecture.md#configurations; not stored),
    LoRA alpha = rank (docs/original/checkpoints.md#stage-2-file). ``towers=False`` skips inferring the vision/text
    towers of a stage-2 file (when only the touch model is built).
    """
    arch = explicit_arch(config)
    if arch is not None:
        return arch
    p = S2 if detect_stage2(sd) else ""
    base = get_arch("anytouch-l14")
    touch = base.touch  # replaced by the config's towers below
    if config is None:
        view = {"vision_model." + k[len(p + "touch_model."):]: v for k, v in sd.items() if k.startswith(p + "touch_model.")}
        view.setdefault("vision_model.embeddings.patch_embedding.weight", sd[p + "video_patch_embedding.weight"])
        touch = tower_from_shapes(view, "vision_model.")
    dec_w = int(sd[p + "decoder_embed.weight"].shape[0])
    decoder = DecoderCfg(
        width=dec_w, layers=len(layer_indices(sd, p + "touch_decoder_blocks.")), heads=16,
        mlp_width=int(sd[p + "touch_decoder_blocks.0.intermediate.dense.weight"].shape[0]),
    )
    table = sd[p + "sensor_token"]
    arch = dataclasses.replace(
        base, name="original", projection_dim=int(sd[p + "touch_projection.weight"].shape[0]), touch=touch,
        vision=dataclasses.replace(touch), decoder=decoder, num_sensors=int(table.shape[0]),
        tokens_per_sensor=int(table.shape[1]), num_frames=int(sd[p + "video_patch_embedding.weight"].shape[1]),
        pred_frames=int(sd[p + "decoder_pred_video.weight"].shape[0]) // int(sd[p + "decoder_pred.weight"].shape[0]),
    )
    if p and towers:
        plain = merge_peft_vision({k: v for k, v in sd.items() if k.startswith("vision_model.")}, None,
                                  ConversionReport("", ""))
        rank = next((int(v.shape[0]) for k, v in plain.items() if k.endswith("lora_A")), 0)
        arch.lora_rank, arch.lora_alpha = rank, float(rank)
        if config is None:
            arch.vision = tower_from_shapes(plain, "vision_model.")
            arch.text = text_from_shapes(sd)
    if config is not None:
        arch = arch_from_hf_config(config, base=arch)
    return arch


def build(loaded: LoadedCheckpoint, what: str, config: ConfigLike, inflate: str,
          merge_lora: bool) -> Tuple[nn.Module, ConversionReport]:
    """The format-registry builder: ``what`` (``"model"``, ``"encoder"`` or ``"mae"``) from an original file whose
    architecture comes from ``config`` or the tensors (:func:`arch_from_original`); ``inflate`` does not apply."""
    sd, src = loaded.content, str(loaded.weights)
    stage2 = detect_stage2(sd)
    arch = arch_from_original(sd, config, towers=stage2 and what == "model")
    file_rank = next((int(v.shape[0]) for k, v in sd.items() if k.endswith("lora_A.default.weight")), 0)
    if stage2 and what == "model" and file_rank and file_rank != arch.lora_rank:
        raise CheckpointMismatchError(
            f"{src}: the vision LoRA has rank {file_rank} in the file but the architecture says lora_rank="
            f"{arch.lora_rank}; the merge scale alpha/r would be wrong (pass a matching config=)"
        )
    scale = arch.lora_alpha / arch.lora_rank if (merge_lora and file_rank) else None
    factories = {"encoder": lambda: TouchEncoder(arch), "mae": lambda: TouchMAE(arch),
                 "model": lambda: AnyTouchModel(arch, towers=stage2, lora=not merge_lora)}
    if what not in factories:
        raise ValueError(f"what={what!r}; expected one of {sorted(factories)}")
    model = on_meta(factories[what])
    conv, report = from_original(sd, model.state_dict(), src, lora_scale=scale)
    if scale is not None:
        report.notes.append(f"LoRA merge scale alpha/r = {arch.lora_alpha:g}/{arch.lora_rank}")
    return load_assign(model, conv, src), report


# ----------------------------------------------------------------------------------------------------- export
def _clip_layer_keys(prefix: str, layers: int, peft: bool):
    for i in range(layers):
        for a in _ATTN:
            if peft:
                yield from (f"{prefix}{i}.self_attn.{a}.{s}" for s in
                            ("base_layer.weight", "base_layer.bias", "lora_A.default.weight", "lora_B.default.weight"))
            else:
                yield from (f"{prefix}{i}.self_attn.{a}.weight", f"{prefix}{i}.self_attn.{a}.bias")
        for m in ("layer_norm1", "mlp.fc1", "mlp.fc2", "layer_norm2"):
            yield from (f"{prefix}{i}.{m}.weight", f"{prefix}{i}.{m}.bias")


def stage1_key_order(layers: int, decoder_layers: int):
    """The original stage-1 keys in state-dict order (docs/original/checkpoints.md#stage-1-file)."""
    yield from ("decoder_pos_embed", "mask_token", "sensor_token", "touch_model.embeddings.class_embedding",
                "touch_model.embeddings.patch_embedding.weight", "touch_model.embeddings.position_embedding.weight",
                "touch_model.pre_layrnorm.weight", "touch_model.pre_layrnorm.bias")
    yield from _clip_layer_keys("touch_model.encoder.layers.", layers, peft=False)
    yield from ("touch_model.post_layernorm.weight", "touch_model.post_layernorm.bias", "touch_projection.weight",
                "video_patch_embedding.weight", "video_position_embedding.weight", "decoder_embed.weight",
                "decoder_embed.bias")
    for j in range(decoder_layers):
        for s, _ in DECODER_BLOCK_TABLE:
            yield from (f"touch_decoder_blocks.{j}.{s}weight", f"touch_decoder_blocks.{j}.{s}bias")
    yield from ("decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias",
                "decoder_pred_video.weight", "decoder_pred_video.bias")


def to_original_stage1(sd: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Our TouchMAE state dict -> the original stage-1 layout (533 keys at ViT-L/14), in the original order.

    The unused keys are written back: ``touch_model.embeddings.patch_embedding.weight`` = ``patch_embed.weight.sum(1)``
    (the image-equivalent 2-D conv, docs/original/architecture.md#invariants-and-equivalences) and
    ``video_position_embedding.weight`` = a copy of ``pos_embed``.
    """
    out = OrderedDict()
    special = {
        "touch_model.embeddings.patch_embedding.weight": lambda: sd["encoder.patch_embed.weight"].sum(1),
        "video_position_embedding.weight": lambda: sd["encoder.pos_embed"].clone(),
    }
    layers = len(layer_indices(sd, "encoder.blocks."))
    for k in stage1_key_order(layers, len(layer_indices(sd, "decoder_blocks."))):
        out[k] = special[k]() if k in special else sd[_stage1_key(k)]
    used = {_stage1_key(k) for k in out if k not in special}
    extra = [k for k in sd if k not in used]
    if extra:
        raise CheckpointMismatchError(f"keys of the TouchMAE state dict with no place in the original layout: {extra[:8]}")
    return out


def to_original_stage2(sd: Mapping[str, torch.Tensor], lora_rank: int = 16, seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Our AnyTouchModel state dict -> the original stage-2 layout (1317 keys at ViT-L/14), in the original order.

    The vision encoder is written in PEFT's layout. With LoRA in ``sd`` its A/B are written as they are (the base
    weight unmerged); for a merged tower, A gets PEFT's Kaiming-uniform init (seeded by ``seed``) with rank
    ``lora_rank`` and B is zero, so W_base + B·A equals the merged weight.
    """
    if "vision.cls_token" not in sd:
        raise ValueError("to_original_stage2 needs a model with vision/text towers; use to_original_stage1 for a "
                         "towerless (stage-1) model")
    out = OrderedDict(logit_scale=sd["logit_scale"])
    out["text_model.embeddings.token_embedding.weight"] = sd["text.token_embed.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["text.pos_embed"]
    for k in _clip_layer_keys("text_model.encoder.layers.", len(layer_indices(sd, "text.blocks.")), peft=False):
        out[k] = sd["text.blocks." + k[len("text_model.encoder.layers."):]]
    out["text_model.final_layer_norm.weight"] = sd["text.norm_final.weight"]
    out["text_model.final_layer_norm.bias"] = sd["text.norm_final.bias"]
    inv_vis = tuple((d, s) for s, d in VISION_TABLE)
    for k in ("cls_token", "patch_embed.weight", "pos_embed", "norm_pre.weight", "norm_pre.bias"):
        out[_rename(k, inv_vis)] = sd["vision." + k]
    gen = torch.Generator().manual_seed(seed)
    for k in _clip_layer_keys(PEFT, len(layer_indices(sd, "vision.blocks.")), peft=True):
        i, rest = k[len(PEFT):].split(".", 1)
        ours = f"vision.blocks.{i}." + rest.replace("base_layer.", "").replace(".default.weight", "")
        if ours in sd:
            out[k] = sd[ours]
        elif ours.endswith("lora_A"):
            w = sd[ours[: -len("lora_A")] + "weight"]
            a = torch.empty(lora_rank, w.shape[1], dtype=w.dtype)
            bound = 1 / math.sqrt(w.shape[1])  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            out[k] = a.uniform_(-bound, bound, generator=gen)
        elif ours.endswith("lora_B"):
            w = sd[ours[: -len("lora_B")] + "weight"]
            out[k] = torch.zeros(w.shape[0], lora_rank, dtype=w.dtype)
        else:
            raise KeyError(f"missing {ours!r} in the AnyTouchModel state dict")
    out["vision_model.post_layernorm.weight"] = sd["vision.norm_post.weight"]
    out["vision_model.post_layernorm.bias"] = sd["vision.norm_post.bias"]
    out["visual_projection.weight"] = sd["vision.proj.weight"]
    out["text_projection.weight"] = sd["text.proj.weight"]
    out["cross_sensor_head.weight"], out["cross_sensor_head.bias"] = sd["cross_head.weight"], sd["cross_head.bias"]
    for k, v in to_original_stage1({k[len("touch."):]: v for k, v in sd.items() if k.startswith("touch.")}).items():
        out[S2 + k] = v
    used = {id(v) for v in out.values()}
    extra = [k for k in sd if id(sd[k]) not in used and not k.startswith("touch.")]
    if extra:
        raise CheckpointMismatchError(f"keys of the AnyTouchModel state dict with no place in the original layout: {extra[:8]}")
    return out
