"""Test helpers for the checkpoint tests: tiny checkpoints in the foreign layouts, written from the original's key
tables (docs/original/checkpoints.md#stage-1-file, #stage-2-file) independently of the converters' own tables, plus a
naive reference touch-encoder forward.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from anytouch2_fixtures import released_file, tiny_encoder

from anytouch.checkpoint import anytouch2 as a2
from anytouch.checkpoint import hub, ours
from anytouch.models import AnyTouchModel
from anytouch.models.config import get_arch

TINY = get_arch("tiny")


def clip_config_dict(arch=TINY) -> dict:
    """A Hugging Face CLIP config.json for the towers of ``arch`` (DataComp-style: exact gelu, eos_token_id 2)."""
    v, t = arch.vision, arch.text
    return {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": arch.projection_dim,
        "logit_scale_init_value": 2.6592,
        "vision_config": {"hidden_size": v.width, "num_hidden_layers": v.layers, "num_attention_heads": v.heads,
                          "intermediate_size": v.mlp_width, "patch_size": v.patch_size, "image_size": v.image_size,
                          "hidden_act": v.act, "layer_norm_eps": v.layer_norm_eps},
        "text_config": {"hidden_size": t.width, "num_hidden_layers": t.layers, "num_attention_heads": t.heads,
                        "intermediate_size": t.mlp_width, "vocab_size": t.vocab_size,
                        "max_position_embeddings": t.context_length, "hidden_act": t.act, "eos_token_id": 2,
                        "bos_token_id": 0, "pad_token_id": 1},
    }


def write_clip_config(folder: Path, arch=TINY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(clip_config_dict(arch)))
    return folder / "config.json"


def _rand(gen, shape, kind="w"):
    if kind == "ln_w":
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    return 0.05 * torch.randn(shape, generator=gen)


def _clip_layers(prefix, n, width, mlp, peft=False, rank=0):
    """HF CLIPEncoderLayer keys and shapes in state-dict order (k, v, q, out; LN1; fc1; fc2; LN2)."""
    for i in range(n):
        for a in ("k_proj", "v_proj", "q_proj", "out_proj"):
            if peft:
                yield f"{prefix}{i}.self_attn.{a}.base_layer.weight", (width, width), "w"
                yield f"{prefix}{i}.self_attn.{a}.base_layer.bias", (width,), "w"
                yield f"{prefix}{i}.self_attn.{a}.lora_A.default.weight", (rank, width), "w"
                yield f"{prefix}{i}.self_attn.{a}.lora_B.default.weight", (width, rank), "w"
            else:
                yield f"{prefix}{i}.self_attn.{a}.weight", (width, width), "w"
                yield f"{prefix}{i}.self_attn.{a}.bias", (width,), "w"
        yield f"{prefix}{i}.layer_norm1.weight", (width,), "ln_w"
        yield f"{prefix}{i}.layer_norm1.bias", (width,), "w"
        yield f"{prefix}{i}.mlp.fc1.weight", (mlp, width), "w"
        yield f"{prefix}{i}.mlp.fc1.bias", (mlp,), "w"
        yield f"{prefix}{i}.mlp.fc2.weight", (width, mlp), "w"
        yield f"{prefix}{i}.mlp.fc2.bias", (width,), "w"
        yield f"{prefix}{i}.layer_norm2.weight", (width,), "ln_w"
        yield f"{prefix}{i}.layer_norm2.bias", (width,), "w"


def stage1_layout(arch=TINY):
    """(key, shape, kind) of the original stage-1 model (docs/original/checkpoints.md#stage-1-file), in state-dict
    order."""
    t, d = arch.touch, arch.decoder
    D, P, p = t.width, arch.projection_dim, t.patch_size
    n = t.num_patches + 1
    pd = p * p * 3
    yield "decoder_pos_embed", (1, n, d.width), "w"
    yield "mask_token", (1, 1, d.width), "w"
    yield "sensor_token", (arch.num_sensors, arch.tokens_per_sensor, D), "w"
    yield "touch_model.embeddings.class_embedding", (D,), "w"
    yield "touch_model.embeddings.patch_embedding.weight", (D, 3, p, p), "w"
    yield "touch_model.embeddings.position_embedding.weight", (n, D), "w"
    yield "touch_model.pre_layrnorm.weight", (D,), "ln_w"
    yield "touch_model.pre_layrnorm.bias", (D,), "w"
    yield from _clip_layers("touch_model.encoder.layers.", t.layers, D, t.mlp_width)
    yield "touch_model.post_layernorm.weight", (D,), "ln_w"
    yield "touch_model.post_layernorm.bias", (D,), "w"
    yield "touch_projection.weight", (P, D), "w"
    yield "video_patch_embedding.weight", (D, arch.num_frames, 3, p, p), "w"
    yield "video_position_embedding.weight", (n, D), "w"
    yield "decoder_embed.weight", (d.width, P), "w"
    yield "decoder_embed.bias", (d.width,), "w"
    for j in range(d.layers):
        b = f"touch_decoder_blocks.{j}."
        for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                     "attention.output.dense"):
            yield b + name + ".weight", (d.width, d.width), "w"
            yield b + name + ".bias", (d.width,), "w"
        yield b + "intermediate.dense.weight", (d.mlp_width, d.width), "w"
        yield b + "intermediate.dense.bias", (d.mlp_width,), "w"
        yield b + "output.dense.weight", (d.width, d.mlp_width), "w"
        yield b + "output.dense.bias", (d.width,), "w"
        for ln in ("layernorm_before", "layernorm_after"):
            yield b + ln + ".weight", (d.width,), "ln_w"
            yield b + ln + ".bias", (d.width,), "w"
    yield "decoder_norm.weight", (d.width,), "ln_w"
    yield "decoder_norm.bias", (d.width,), "w"
    yield "decoder_pred.weight", (pd, d.width), "w"
    yield "decoder_pred.bias", (pd,), "w"
    yield "decoder_pred_video.weight", (pd * arch.pred_frames, d.width), "w"
    yield "decoder_pred_video.bias", (pd * arch.pred_frames,), "w"


def stage2_layout(arch=TINY, rank=None):
    """(key, shape, kind) of the original stage-2 model (docs/original/checkpoints.md#stage-2-file), PEFT vision layout,
    in state-dict order."""
    rank = arch.lora_rank if rank is None else rank
    v, t, P = arch.vision, arch.text, arch.projection_dim
    yield "logit_scale", (), "w"
    yield "text_model.embeddings.token_embedding.weight", (t.vocab_size, t.width), "w"
    yield "text_model.embeddings.position_embedding.weight", (t.context_length, t.width), "w"
    yield from _clip_layers("text_model.encoder.layers.", t.layers, t.width, t.mlp_width)
    yield "text_model.final_layer_norm.weight", (t.width,), "ln_w"
    yield "text_model.final_layer_norm.bias", (t.width,), "w"
    yield "vision_model.embeddings.class_embedding", (v.width,), "w"
    yield "vision_model.embeddings.patch_embedding.weight", (v.width, 3, v.patch_size, v.patch_size), "w"
    yield "vision_model.embeddings.position_embedding.weight", (v.num_patches + 1, v.width), "w"
    yield "vision_model.pre_layrnorm.weight", (v.width,), "ln_w"
    yield "vision_model.pre_layrnorm.bias", (v.width,), "w"
    yield from _clip_layers("vision_model.encoder.base_model.model.layers.", v.layers, v.width, v.mlp_width, True, rank)
    yield "vision_model.post_layernorm.weight", (v.width,), "ln_w"
    yield "vision_model.post_layernorm.bias", (v.width,), "w"
    yield "visual_projection.weight", (P, v.width), "w"
    yield "text_projection.weight", (P, t.width), "w"
    yield "cross_sensor_head.weight", (1, P), "w"
    yield "cross_sensor_head.bias", (1,), "w"
    for k, shape, kind in stage1_layout(arch):
        yield "touch_mae_model." + k, shape, kind


def make_state_dict(layout, seed=0) -> "OrderedDict[str, torch.Tensor]":
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict((k, _rand(gen, shape, kind)) for k, shape, kind in layout)


def save_original(path: Path, sd) -> Path:
    """Write ``sd`` the way the original training code does (docs/original/checkpoints.md#training-checkpoint-files),
    argparse.Namespace included."""
    torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "epoch": 19, "scaler": {"scale": 65536.0, "growth_factor": 2.0},
                "args": argparse.Namespace(batch_size=64, lr=1e-4, use_same_patchemb=True)}, path)
    return path


def write_every_format(root: Path) -> dict:
    """One tiny checkpoint per supported format, written to ``root`` the way users get them: name -> path.

    Skips the calling test when transformers or open_clip (which write the CLIP files) is missing.
    """
    transformers = pytest.importorskip("transformers")
    cfg = {k: v for k, v in clip_config_dict().items() if k not in ("architectures", "model_type")}
    torch.manual_seed(0)
    hf = transformers.CLIPModel(transformers.CLIPConfig(**cfg))
    hf.save_pretrained(root / "hf_folder")  # config.json + model.safetensors
    torch.save(hf.state_dict(), root / "pytorch_model.bin")
    model = AnyTouchModel(TINY).eval()
    out = {
        "hf_folder": root / "hf_folder",
        "hf_bin": root / "pytorch_model.bin",
        "ours_pt": ours.save_checkpoint(root / "ours.pt", model, {"seed": 0}),
        "original_stage1": save_original(root / "s1.pth", make_state_dict(stage1_layout())),
        "original_stage2": save_original(root / "s2.pth", make_state_dict(stage2_layout())),
    }
    out["ours_st"] = ours.export_safetensors(out["ours_pt"], root / "ours.safetensors")
    out["hub_folder"] = hub.save_pretrained(model, root / "hub_folder", source=out["ours_pt"])
    open_clip = pytest.importorskip("open_clip")
    oc = open_clip.model.CLIP(
        embed_dim=32, vision_cfg=dict(image_size=56, layers=2, width=64, head_width=32, mlp_ratio=2.0, patch_size=14),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2, mlp_ratio=2.0))
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in oc.state_dict().items()}}, root / "oc.pt")
    out["open_clip"] = root / "oc.pt"
    enc = tiny_encoder(4)
    out["anytouch2"] = released_file(enc, root / "at2.pth")
    out["anytouch2_st"] = a2.export_safetensors(enc, root / "at2.safetensors")
    out["hub_folder_anytouch2"] = hub.save_pretrained(enc, root / "hub_folder_at2", source=out["anytouch2"])
    return out


def reference_touch_feature(sd, img, sensor_slot, arch=TINY, prefix=""):
    """docs/original/architecture.md computed directly from original tensors: the (B, P) cls feature of images
    (B,3,H,W)."""
    t = arch.touch
    g = lambda k: sd[prefix + k]  # noqa: E731
    b = img.shape[0]
    clip = img.unsqueeze(1).repeat(1, arch.num_frames, 1, 1, 1)  # (B, T=3 as conv in-channels, 3 rgb as depth, H, W)
    x = F.conv3d(clip, g("video_patch_embedding.weight"), stride=(3, t.patch_size, t.patch_size))
    x = x.flatten(2).transpose(1, 2)  # (B, N, D)
    pos = g("touch_model.embeddings.position_embedding.weight")
    x = x + pos[1:]
    cls = (g("touch_model.embeddings.class_embedding") + pos[0]).expand(b, 1, -1)
    sens = g("sensor_token")[sensor_slot].expand(b, -1, -1)
    x = torch.cat([cls, sens, x], 1)
    ln = lambda x, k, eps=t.layer_norm_eps: F.layer_norm(x, (x.shape[-1],), g(k + ".weight"), g(k + ".bias"), eps)  # noqa: E731
    lin = lambda x, k: F.linear(x, g(k + ".weight"), g(k + ".bias"))  # noqa: E731
    x = ln(x, "touch_model.pre_layrnorm")
    h, dh = t.heads, t.width // t.heads
    for i in range(t.layers):
        L = f"touch_model.encoder.layers.{i}."
        y = ln(x, L + "layer_norm1")
        q, k, v = (lin(y, L + f"self_attn.{n}_proj").view(b, -1, h, dh).transpose(1, 2) for n in "qkv")
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), -1) @ v
        x = x + lin(att.transpose(1, 2).reshape(b, -1, t.width), L + "self_attn.out_proj")
        y = ln(x, L + "layer_norm2")
        x = x + lin(F.gelu(lin(y, L + "mlp.fc1")), L + "mlp.fc2")
    cls_out = ln(x[:, 0], "touch_model.post_layernorm")
    return cls_out @ g("touch_projection.weight").t()
