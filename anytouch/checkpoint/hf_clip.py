"""Hugging Face CLIP weights (e.g. laion DataComp-XL ViT-L/14) -> AnyTouch initialisations.

Follows the original AnyTouch code (GeWu-Lab/AnyTouch, ICLR 2025) as described in
docs/original/checkpoints.md#clip-to-stage-1, #stage-1-and-clip-to-stage-2:

* stage 1 (:func:`hf_to_stage1`): ``vision_model.*`` -> the touch encoder; the 2-D patch conv is *inflated* to the
  3-frame patch embedding by repeating it along a new frame axis (no division by 3, so a static image embeds to
  exactly 3x CLIP's patch embedding; ``inflate="mean"`` divides by the frame count instead);
  ``visual_projection`` -> the touch projection; the text tower and ``logit_scale`` are dropped; the decoder, mask
  token and sensor tokens keep their fresh initialisation.
* stage 2 (:func:`hf_to_stage2`): the same touch model (or a given stage-1 state dict), plus plain CLIP vision and
  text towers; ``logit_scale`` is overwritten with ln(1/0.07); LoRA A/B and the cross-sensor head stay fresh.

Input: a CLIP state dict as saved by transformers (``pytorch_model.bin`` or ``model.safetensors``, optionally
with stray ``*.position_ids`` buffers from older transformers versions).
"""
from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..models import AnyTouchModel, TouchEncoder, TouchMAE
from ..models.config import ArchConfig, TextCfg, TowerCfg, arch_from_hf_config, get_arch
from .common import (CheckpointMismatchError, ConfigLike, ConversionReport, check_state_dict, explicit_arch,
                     fill_fresh, layer_indices, load_assign)
from .files import LoadedCheckpoint

__all__ = [
    "detect",
    "build",
    "vision_to_tower",
    "text_to_tower",
    "hf_to_stage1",
    "hf_to_stage2",
    "tower_from_shapes",
    "text_from_shapes",
    "arch_from_hf_state_dict",
    "POSITION_IDS_REASON",
]

TELLTALE = "vision_model.encoder.layers.0.self_attn.q_proj.weight"

POSITION_IDS_REASON = "position_ids buffer (non-persistent in current transformers; saved by older versions)"

# HF key (exact, or a prefix ending in '.') -> our tower key. Block suffixes are identical on both sides
# (self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2).
VISION_TABLE = (
    ("vision_model.embeddings.class_embedding", "cls_token"),
    ("vision_model.embeddings.patch_embedding.weight", "patch_embed.weight"),
    ("vision_model.embeddings.position_embedding.weight", "pos_embed"),
    ("vision_model.pre_layrnorm.", "norm_pre."),
    ("vision_model.encoder.layers.", "blocks."),
    ("vision_model.post_layernorm.", "norm_post."),
    ("visual_projection.weight", "proj.weight"),
)
TEXT_TABLE = (
    ("text_model.embeddings.token_embedding.weight", "token_embed.weight"),
    ("text_model.embeddings.position_embedding.weight", "pos_embed"),
    ("text_model.encoder.layers.", "blocks."),
    ("text_model.final_layer_norm.", "norm_final."),
    ("text_projection.weight", "proj.weight"),
)
_POSITION_IDS = re.compile(r"(^|\.)position_ids$")
# TouchMAE keys CLIP does not provide: they keep their fresh initialisation
# (docs/original/checkpoints.md#clip-to-stage-1); anything else missing is an error
FRESH_STAGE1 = ("mask_token", "decoder_pos_embed", "encoder.sensor_tokens", "decoder_embed.", "decoder_blocks.",
                "decoder_norm.", "head_image.", "head_video.")
_TEXT_KEYS = re.compile(r"^(text_model\.|text_projection\.)")


def detect(state_dict: Mapping[str, object]) -> bool:
    """True for a plain (not PEFT-wrapped) HF CLIP state dict."""
    return TELLTALE in state_dict and "vision_model.embeddings.patch_embedding.weight" in state_dict


def _rename(key: str, table) -> Optional[str]:
    for src, dst in table:
        if key == src or (src.endswith(".") and key.startswith(src)):
            return dst + key[len(src):]
    return None


def _convert(sd, table, prefix: str, report: ConversionReport, what: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    out, origin = {}, {}
    for k, v in sd.items():
        dst = _rename(k, table)
        if dst is not None and not _POSITION_IDS.search(k):
            out[prefix + dst], origin[prefix + dst] = v, k
    if not out:
        raise CheckpointMismatchError(f"{report.source}: no {what} keys (expected {table[0][0]!r} and the like)")
    return out, origin


def vision_to_tower(sd, prefix: str, report: ConversionReport) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``vision_model.*`` + ``visual_projection`` -> our ViT tower keys under ``prefix`` (no inflation)."""
    return _convert(sd, VISION_TABLE, prefix, report, "CLIP vision")


def text_to_tower(sd, prefix: str, report: ConversionReport) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``text_model.*`` + ``text_projection`` -> our text tower keys under ``prefix``."""
    return _convert(sd, TEXT_TABLE, prefix, report, "CLIP text")


def _inflate(w2: torch.Tensor, frames: int, inflate: str) -> torch.Tensor:
    # (D, 3, p, p) -> (D, frames, 3, p, p) with W3[o, t, c] = W2[o, c] for every frame t
    # (docs/original/architecture.md#patch-embedding, docs/original/checkpoints.md#clip-to-stage-1)
    w3 = w2.unsqueeze(1).repeat(1, frames, 1, 1, 1)
    if inflate == "repeat":
        return w3
    if inflate == "mean":
        return w3 / frames
    raise ValueError(f"inflate={inflate!r}; expected 'repeat' (the original, no division) or 'mean'")


def _touch_from_clip(sd, target, prefix: str, inflate: str, report: ConversionReport):
    conv, origin = vision_to_tower(sd, prefix, report)
    key = prefix + "patch_embed.weight"
    if key in target and conv[key].dim() == 4:
        frames = target[key].shape[1]
        conv[key] = _inflate(conv[key], frames, inflate)
        report.notes.append(
            f"patch embedding inflated to {frames} frames by repetition"
            + (" and divided by the frame count" if inflate == "mean" else " (no division: an image embeds to "
               f"{frames}x CLIP's patch embedding, as in the original)")
        )
    return conv, origin


def hf_to_stage1(
    sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], source: str = "<state dict>",
    inflate: str = "repeat",
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """HF CLIP -> a TouchMAE state dict (docs/original/checkpoints.md#clip-to-stage-1).

    Args:
        sd: the HF CLIP state dict.
        target: ``TouchMAE.state_dict()`` of the freshly built model; its values are used for keys CLIP does not
            provide (decoder, mask token, sensor tokens, decoder positions) and its shapes for the final check.
        source: file name for messages.
        inflate: ``"repeat"`` (original: no division) or ``"mean"`` (divide the inflated kernel by the frame count).

    Returns:
        ``(state_dict, report)``; the state dict loads with ``strict=True``.
    """
    report = ConversionReport(source, "hf_clip")
    _reject_unknown(sd, report)
    conv, origin = _touch_from_clip(sd, target, "encoder.", inflate, report)
    for k in sd:
        if _TEXT_KEYS.match(k) and not _POSITION_IDS.search(k):
            report.ignore(k, "CLIP text tower: not part of the stage-1 model (docs/original/checkpoints.md#clip-to-stage-1)")
        elif k == "logit_scale":
            report.ignore(k, "CLIP logit scale: not part of the stage-1 model (docs/original/checkpoints.md#clip-to-stage-1)")
    fresh = [k for k in target if k not in conv and _matches(k, FRESH_STAGE1)]
    fill_fresh(conv, target, fresh, "fresh initialisation (not in CLIP; docs/original/checkpoints.md#clip-to-stage-1)", report)
    check_state_dict(conv, target, source, origin)
    return conv, report


def hf_to_stage2(
    sd: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], source: str = "<state dict>",
    inflate: str = "repeat", logit_scale: float = math.log(1 / 0.07),
    touch_state: Optional[Mapping[str, torch.Tensor]] = None,
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """HF CLIP (+ optionally a stage-1 TouchMAE state dict) -> an AnyTouchModel state dict
    (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2).

    The touch model comes from ``touch_state`` when given (``--mae_dir`` in the original), else from CLIP as in
    :func:`hf_to_stage1`. The vision tower is plain CLIP (not the touch encoder); the text tower is CLIP's;
    ``logit_scale`` is set to ``logit_scale`` (ln(1/0.07) = 2.6593 by default) whatever the file holds; the
    vision LoRA A/B and ``cross_head`` keep their fresh initialisation.
    """
    report = ConversionReport(source, "hf_clip")
    _reject_unknown(sd, report)
    if touch_state is None:
        conv, origin = _touch_from_clip(sd, target, "touch.encoder.", inflate, report)
    else:
        conv = {f"touch.{k}": v for k, v in touch_state.items()}
        origin = {k: f"<stage-1 state dict>.{k[len('touch.'):]}" for k in conv}
        report.notes.append("touch model taken from the given stage-1 state dict (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 step 2)")
    vis, vorigin = vision_to_tower(sd, "vision.", report)
    txt, torigin = text_to_tower(sd, "text.", report)
    conv.update(vis), conv.update(txt), origin.update(vorigin), origin.update(torigin)
    if "logit_scale" in sd:
        report.ignore("logit_scale", f"overwritten with ln(1/0.07) = {logit_scale:.5f} (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 step 5)")
    conv["logit_scale"] = torch.tensor(float(logit_scale), dtype=target["logit_scale"].dtype).reshape(target["logit_scale"].shape)
    rest = [k for k in target if k not in conv]
    lora = [k for k in rest if k.startswith("vision.blocks.") and k.endswith((".lora_A", ".lora_B"))]
    fill_fresh(conv, target, lora, "LoRA A/B: fresh (A Kaiming-uniform, B zero, as PEFT; docs/original/checkpoints.md#stage-2-file)", report)
    fresh = [k for k in rest if _matches(k, ("cross_head.",) + tuple("touch." + p for p in FRESH_STAGE1))]
    fill_fresh(conv, target, fresh, "fresh initialisation (not in CLIP; docs/original/checkpoints.md#stage-1-and-clip-to-stage-2)", report)
    check_state_dict(conv, target, source, origin)
    return conv, report


def _matches(key: str, patterns) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


def _reject_unknown(sd, report: ConversionReport) -> None:
    """Refuse keys outside the HF CLIP layout; name the tolerated ``position_ids`` buffers in the report."""
    for k in sd:
        if _POSITION_IDS.search(k):
            report.ignore(k, POSITION_IDS_REASON)
        elif k != "logit_scale" and _rename(k, VISION_TABLE + TEXT_TABLE) is None:
            raise CheckpointMismatchError(
                f"{report.source}: unexpected key {k!r} in a Hugging Face CLIP state dict "
                f"(expected vision_model.*, text_model.*, visual_projection, text_projection, logit_scale)"
            )


def _heads(width: int) -> int:
    # Not stored in the weights. Every CLIP / open_clip ViT uses 64-wide heads (ViT-L/14: 1024 -> 16, text 768 -> 12).
    if width % 64:
        raise ValueError(f"cannot infer the head count of a {width}-wide tower from shapes; pass config=")
    warnings.warn(f"a {width}-wide tower: the attention head count is not stored in the checkpoint; assuming {width // 64} heads "
                  f"(head dim 64, as every CLIP ViT). Pass config= (a CLIP config.json) if that is wrong.",
                  stacklevel=3)
    return width // 64


def tower_from_shapes(sd: Mapping[str, torch.Tensor], prefix: str) -> TowerCfg:
    """A ViT tower's sizes from HF-style keys under ``prefix`` (e.g. ``"vision_model."``).

    width = class embedding length; layers = number of ``encoder.layers.i``; mlp = fc1 rows; patch size = conv
    kernel; image size = sqrt(position rows - 1) * patch; heads = width // 64 (not stored; head dim 64 as in every
    CLIP ViT). The activation (exact GELU) and LayerNorm eps (1e-5) are not stored either: DataComp CLIP values.
    """
    need = [f"{prefix}embeddings.class_embedding", f"{prefix}embeddings.position_embedding.weight",
            f"{prefix}encoder.layers.0.mlp.fc1.weight", f"{prefix}embeddings.patch_embedding.weight"]
    for k in need:
        if k not in sd:
            raise CheckpointMismatchError(f"cannot infer the tower size: key {k!r} not found")
    width = int(sd[need[0]].shape[0])
    rows = int(sd[need[1]].shape[0])
    patch = int(sd[need[3]].shape[-1])
    grid = math.isqrt(rows - 1)
    if grid * grid != rows - 1:
        raise CheckpointMismatchError(f"{need[1]!r} has {rows} rows; expected 1 + a square number of patches")
    return TowerCfg(
        width=width, layers=len(layer_indices(sd, f"{prefix}encoder.layers.")), heads=_heads(width),
        mlp_width=int(sd[need[2]].shape[0]), patch_size=patch, image_size=grid * patch,
    )


def text_from_shapes(sd: Mapping[str, torch.Tensor], prefix: str = "text_model.") -> TextCfg:
    """The text tower's sizes from HF keys (heads = width // 64; pooling at argmax(ids) as the original config)."""
    tok = sd[f"{prefix}embeddings.token_embedding.weight"]
    width = int(tok.shape[1])
    return TextCfg(
        vocab_size=int(tok.shape[0]), width=width, layers=len(layer_indices(sd, f"{prefix}encoder.layers.")),
        heads=_heads(width), mlp_width=int(sd[f"{prefix}encoder.layers.0.mlp.fc1.weight"].shape[0]),
        context_length=int(sd[f"{prefix}embeddings.position_embedding.weight"].shape[0]),
    )


def arch_from_hf_state_dict(sd: Mapping[str, torch.Tensor], base: Union[str, ArchConfig] = "anytouch-l14") -> ArchConfig:
    """An ArchConfig whose towers match an HF CLIP state dict; decoder / sensor table / LoRA from ``base``."""
    b = get_arch(base)
    vision = tower_from_shapes(sd, "vision_model.")
    text = text_from_shapes(sd) if "text_model.embeddings.token_embedding.weight" in sd else b.text
    proj = int(sd["visual_projection.weight"].shape[0])
    return dataclasses.replace(b, name="hf-clip", projection_dim=proj, touch=vision, vision=dataclasses.replace(vision),
                               text=text)


# -- the format-registry builder (anytouch.checkpoint.formats), shared by hf_clip and open_clip ---------------------
_HF_FOLDER_FILES = ("model.safetensors", "pytorch_model.bin")


def _arch(sd: Mapping[str, torch.Tensor], config: ConfigLike, weights: Path) -> ArchConfig:
    arch = explicit_arch(config)
    if arch is not None:
        return arch
    if config is not None:
        return arch_from_hf_config(config)
    if (weights.parent / "config.json").is_file() and weights.name in _HF_FOLDER_FILES:
        return arch_from_hf_config(weights.parent)  # the HF folder layout: its config.json describes these weights
    return arch_from_hf_state_dict(sd)


def build(loaded: LoadedCheckpoint, what: str, config: ConfigLike, inflate: str,
          merge_lora: bool) -> Tuple[nn.Module, ConversionReport]:
    """The CLIP-initialised ``what``: ``"mae"`` / ``"encoder"`` as for stage 1 (:func:`hf_to_stage1`), ``"model"``
    the stage-2 model (:func:`hf_to_stage2`); fresh parts take the global RNG. ``merge_lora`` does not apply (the
    LoRA starts fresh). The report of a conversion done while reading (open_clip) is prepended."""
    sd, weights, src = loaded.content, loaded.weights, str(loaded.weights)
    arch = _arch(sd, config, weights)
    if what == "encoder":
        enc = TouchEncoder(arch)
        target = {"encoder." + k: v for k, v in enc.state_dict().items()}
        conv, report = hf_to_stage1(sd, target, src, inflate=inflate)
        model = load_assign(enc, {k[len("encoder."):]: v for k, v in conv.items()}, src)
    elif what == "mae":
        model = TouchMAE(arch)
        conv, report = hf_to_stage1(sd, model.state_dict(), src, inflate=inflate)
        load_assign(model, conv, src)
    elif what == "model":
        model = AnyTouchModel(arch, towers=True)
        conv, report = hf_to_stage2(sd, model.state_dict(), src, inflate=inflate, logit_scale=arch.logit_scale_init)
        load_assign(model, conv, src)
    else:
        raise ValueError(f"what={what!r}; expected 'model', 'encoder' or 'mae'")
    pre = loaded.report
    if pre is not None:
        report.format = pre.format
        report.ignored[:0], report.notes[:0] = pre.ignored, pre.notes
    return model, report
