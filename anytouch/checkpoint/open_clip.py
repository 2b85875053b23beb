"""open_clip CLIP weights -> the Hugging Face CLIP layout (then :mod:`.hf_clip` does the AnyTouch initialisation).

The mapping follows transformers' ``convert_clip_original_pytorch_to_hf.py`` and open_clip's ``convert.py``
(Ilharco et al., open_clip): fused ``attn.in_proj_weight`` / ``in_proj_bias`` are split into q / k / v (in that
order), ``ln_1`` / ``ln_2`` / ``mlp.c_fc`` / ``mlp.c_proj`` become ``layer_norm1`` / ``layer_norm2`` / ``mlp.fc1`` /
``mlp.fc2``, and the projections ``visual.proj`` (width, proj) and ``text_projection`` (width, proj) are transposed
into Linear weights. Only the standard ViT image tower is supported (not timm trunks or ModifiedResNet).
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple

import torch

from .common import CheckpointMismatchError, ConversionReport

__all__ = ["detect", "unwrap", "open_clip_to_hf", "TOP_TABLE", "BLOCK_TABLE"]

TELLTALE = "visual.conv1.weight"

# open_clip key -> HF key (exact keys; transformer blocks are handled by BLOCK_TABLE)
TOP_TABLE = (
    ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"),
    ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"),
    ("visual.ln_post.weight", "vision_model.post_layernorm.weight"),
    ("visual.ln_post.bias", "vision_model.post_layernorm.bias"),
    ("visual.proj", "visual_projection.weight"),  # special case: transposed
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
    ("ln_final.weight", "text_model.final_layer_norm.weight"),
    ("ln_final.bias", "text_model.final_layer_norm.bias"),
    ("text_projection", "text_projection.weight"),  # special case: transposed
    ("logit_scale", "logit_scale"),
)
TRANSPOSED = ("visual.proj", "text_projection")
# block suffix -> HF block suffix (attn.in_proj_* is the special case: split into q/k/v)
BLOCK_TABLE = (
    ("attn.out_proj.weight", "self_attn.out_proj.weight"),
    ("attn.out_proj.bias", "self_attn.out_proj.bias"),
    ("ln_1.weight", "layer_norm1.weight"),
    ("ln_1.bias", "layer_norm1.bias"),
    ("ln_2.weight", "layer_norm2.weight"),
    ("ln_2.bias", "layer_norm2.bias"),
    ("mlp.c_fc.weight", "mlp.fc1.weight"),
    ("mlp.c_fc.bias", "mlp.fc1.bias"),
    ("mlp.c_proj.weight", "mlp.fc2.weight"),
    ("mlp.c_proj.bias", "mlp.fc2.bias"),
)
_BLOCK = re.compile(r"^(?P<tower>visual\.transformer|transformer)\.resblocks\.(?P<i>\d+)\.(?P<rest>.+)$")
_TOWER = {"visual.transformer": "vision_model.encoder.layers.", "transformer": "text_model.encoder.layers."}
# buffers some open_clip versions saved; not weights
IGNORED = {"attn_mask": "causal attention-mask buffer (rebuilt by the text tower)"}


def detect(state_dict: Mapping[str, object]) -> bool:
    """True for an open_clip CLIP state dict with a ViT image tower."""
    return TELLTALE in state_dict and "visual.class_embedding" in state_dict


def unwrap(obj: object) -> Mapping[str, torch.Tensor]:
    """open_clip training checkpoints keep the weights under ``state_dict`` (possibly with a DDP ``module.`` prefix)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected an open_clip state dict, got {type(obj).__name__}")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def open_clip_to_hf(sd: Mapping[str, torch.Tensor], source: str = "<state dict>") -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """open_clip state dict -> HF CLIP state dict (same tensors; q/k/v split, projections transposed).

    Raises:
        CheckpointMismatchError: a key outside the mapping (e.g. a timm trunk or a ModifiedResNet image tower),
            named in the message.
    """
    report = ConversionReport(source, "open_clip")
    if not detect(sd):
        raise ValueError(f"{source} is not an open_clip ViT state dict (no {TELLTALE!r} / 'visual.class_embedding')")
    top = dict(TOP_TABLE)
    blocks = dict(BLOCK_TABLE)
    out: Dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in IGNORED:
            report.ignore(k, IGNORED[k])
        elif k in top:
            out[top[k]] = v.t().contiguous() if k in TRANSPOSED else v
        elif (m := _BLOCK.match(k)) is not None:
            pre = f"{_TOWER[m['tower']]}{m['i']}."
            rest = m["rest"]
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                what = rest.rsplit("_", 1)[1]  # weight | bias
                if v.shape[0] % 3:
                    raise CheckpointMismatchError(f"{source}: {k!r} has {v.shape[0]} rows; expected 3 x width (q, k, v)")
                for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                    out[f"{pre}self_attn.{name}.{what}"] = part
            elif rest in blocks:
                out[pre + blocks[rest]] = v
            else:
                raise CheckpointMismatchError(f"{source}: unexpected open_clip block key {k!r}")
        else:
            raise CheckpointMismatchError(
                f"{source}: unexpected open_clip key {k!r} (only the ViT image tower + text tower layout is supported)"
            )
    return out, report
