"""Tiny AnyTouch 2 encoders and the files the upstream code writes, for the tests (nothing downloaded)."""
import argparse
import json

import torch

from anytouch.checkpoint import anytouch2 as a2
from anytouch.models.anytouch2 import AnyTouch2Encoder
from anytouch.models.config import AnyTouch2Config, TowerCfg

WIDTH, PROJ, IMG, PATCH = 32, 16, 32, 8
G = IMG // PATCH  # 4x4 grid per tube


def tiny_config(frames: int) -> AnyTouch2Config:
    return AnyTouch2Config(name="tiny", projection_dim=PROJ, num_frames=frames,
                           touch=TowerCfg(width=WIDTH, layers=2, heads=2, mlp_width=64, patch_size=PATCH, image_size=IMG))


def tiny_encoder(frames: int, seed: int = 0) -> AnyTouch2Encoder:
    torch.manual_seed(seed)
    enc = AnyTouch2Encoder(tiny_config(frames)).eval()
    for p in enc.parameters():  # LayerNorms away from (1, 0) so a swapped or skipped norm shows
        if p.ndim == 1:
            p.data.normal_(0, 0.5)
    return enc


def clip_config(path, **vision):
    """A CLIP config.json with only the non-default fields, as Hugging Face writes it (no act / eps)."""
    v = dict(hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=PATCH,
             image_size=IMG, **vision)
    path.write_text(json.dumps({"projection_dim": PROJ, "vision_config": v, "text_config": {}}))
    return path


def released_file(enc: AnyTouch2Encoder, path, extra: bool = True):
    """The released flat layout; ``extra``: also the pre-training keys and a foreign key it may carry."""
    sd = dict(a2.to_upstream(enc))
    if extra:
        sd["touch_mae_model.decoder_embed.weight"] = torch.zeros(4, WIDTH)
        sd["touch_mae_model.mask_token"] = torch.zeros(1, 1, 4)
        sd["touch_mae_model.mask_token_diff"] = torch.zeros(1, 1, 4)
        sd["touch_mae_model.diff_touch_decoder_blocks.0.norm.weight"] = torch.zeros(4)
        sd["alpha_vision"] = torch.zeros(())
    torch.save(sd, path)
    return path


def probe_file(enc: AnyTouch2Encoder, head: torch.nn.Module, path, **args):
    """What the upstream ``save_model`` writes: the probe's state dict, optimizer, epoch 0, scaler, args."""
    model = {"tactile_model." + k[len("touch_mae_model."):]: v for k, v in a2.to_upstream(enc).items()}
    model.update({"head." + k: v for k, v in head.state_dict().items()})
    ns = argparse.Namespace(num_frames=enc.num_frames, stride=enc.frame_stride, rank=0, world_size=1,
                            distributed=False, output_dir="/tmp/out", **args)
    opt = {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}
    torch.save({"model": model, "optimizer": opt, "epoch": 0, "scaler": {}, "args": ns}, path)
    return path
