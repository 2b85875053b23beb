"""A T3-style encoder (Zhao et al., "Transferable Tactile Transformers", CoRL 2024; alanzjl/t3) for the benchmark.

Architecture: one small ViT "stem" per sensor (patch 16, CLS token, learned position table, no final norm) feeding
a shared transformer "trunk" with a final LayerNorm. Input: a single image without background, resized so its
shorter side is 256/224 of the model size (aspect kept), centre-cropped, normalised with **per-dataset** statistics
(T3 computes them from 50 training images), so ``mean``/``std`` are required options.

Checkpoint layout (T3's): a folder with ``encoders/<stem>.pth`` and ``trunk.pth``, each a state dict with timm-style
block names (``blocks.<i>.attn.qkv``, ``norm1``, ``mlp.fc1``; stems also ``patch_embed.proj``, ``cls_token``,
``pos_embed``; the trunk ``norm``). Unlike T3, a missing stem file is an error (T3 silently falls back to
``gs_green``), and every key must be used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.layers import Transformer
from .encoders import (EncoderSpec, InputContract, TactileEncoderPlugin, check_options, normalise, register_family,
                       require_checkpoint, sensor_list, to_float)
from .families import read_state_dict
from .sparsh import timm_block_map

__all__ = ["T3Stem", "T3Trunk", "load_t3_part", "T3Plugin"]

_EPS = 1e-6  # timm's ViT LayerNorm eps, used by T3


class T3Stem(nn.Module):
    """Per-sensor ViT: ``forward(x (B, 3, S, S)) -> tokens (B, 1 + N, D)`` ([CLS, patches], no final norm)."""

    def __init__(self, width: int, depth: int, heads: int, mlp_width: int, patch_size: int, num_patches: int):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, width))
        self.blocks = Transformer(width, depth, heads, mlp_width, _EPS, "gelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, D, g, g) -> (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.blocks(x)


class T3Trunk(nn.Module):
    """Shared trunk: ``forward(tokens (B, L, D)) -> (B, L, D)`` after its blocks and final LayerNorm."""

    def __init__(self, width: int, depth: int, heads: int, mlp_width: int):
        super().__init__()
        self.blocks = Transformer(width, depth, heads, mlp_width, _EPS, "gelu")
        self.norm = nn.LayerNorm(width, eps=_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))


def _map_keys(sd: Dict[str, torch.Tensor], width: int, extra: Dict[str, str], where: str) -> Dict[str, torch.Tensor]:
    """timm-style keys -> ours (blocks plus the ``extra`` renames); any key left over is a ValueError."""
    out, used = {}, set()
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    pairs = [(t, m, r) for i in range(depth) for t, m, r in timm_block_map(i, width)]
    pairs += [(t, m, slice(None)) for t, m in extra.items()]
    for theirs, mine, rows in pairs:
        if theirs in sd:
            out[mine] = sd[theirs][rows]
            used.add(theirs)
    left = sorted(set(sd) - used)
    if left:
        raise ValueError(f"{where}: keys this T3 part does not have: {left}")
    return out


def load_t3_part(path: Path, kind: str, heads: int) -> nn.Module:
    """Build a stem (``kind="stem"``) or the trunk from its T3 ``.pth`` file, sizes read from the shapes, strictly."""
    sd = read_state_dict(path, str(path))
    blk = "blocks.0.mlp.fc1.weight"
    if blk not in sd:
        raise ValueError(f"{path}: not a T3 {kind} (no {blk})")
    mlp, width = sd[blk].shape
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    heads = heads or max(width // 64, 1)
    if kind == "stem":
        w = sd.get("patch_embed.proj.weight")
        if w is None or "pos_embed" not in sd:
            raise ValueError(f"{path}: a T3 stem needs patch_embed.proj.weight and pos_embed")
        module = T3Stem(width, depth, heads, mlp, w.shape[-1], sd["pos_embed"].shape[1] - 1)
        extra = {"patch_embed.proj.weight": "patch_embed.weight", "patch_embed.proj.bias": "patch_embed.bias",
                 "cls_token": "cls_token", "pos_embed": "pos_embed"}
    else:
        module = T3Trunk(width, depth, heads, mlp)
        extra = {"norm.weight": "norm.weight", "norm.bias": "norm.bias"}
    ours = _map_keys(sd, width, extra, str(path))
    missing, unexpected = module.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: T3 {kind} is missing {sorted(missing)} (unexpected {sorted(unexpected)})")
    return module


class T3Plugin(TactileEncoderPlugin):
    """Options: ``stems`` (sensor name -> stem file name, e.g. {gelsight: gs_green, digit: digit}; required),
    ``mean`` and ``std`` (required, the dataset's statistics), ``heads`` (width // 64)."""

    def __init__(self, spec: EncoderSpec):
        super().__init__()
        opt = check_options(spec, {"stems": None, "mean": None, "std": None, "heads": 0})
        for key in ("stems", "mean", "std"):
            if not opt[key]:
                raise ValueError(f"{spec.source}: family 't3' needs options.{key}")
        root = require_checkpoint(spec)
        files = {name: root / "encoders" / f"{name}.pth" for name in sorted(set(opt["stems"].values()))}
        absent = [str(f) for f in files.values() if not f.is_file()]
        if absent or not (root / "trunk.pth").is_file():
            lacking = absent or [str(root / "trunk.pth")]
            raise FileNotFoundError(f"{spec.source}: T3 checkpoint folder {root} lacks {lacking}")
        self.stems = nn.ModuleDict({n: load_t3_part(f, "stem", int(opt["heads"])) for n, f in files.items()})
        self.trunk = load_t3_part(root / "trunk.pth", "trunk", int(opt["heads"]))
        self.sensor_to_stem = dict(opt["stems"])
        first = next(iter(self.stems.values()))
        side = first.patch_embed.kernel_size[0] * int(round((first.pos_embed.shape[1] - 1) ** 0.5))
        self.contract = InputContract((side, side), tuple(opt["mean"]), tuple(opt["std"]), False, 1, 1, "per_frame")
        self.embed_dim = self.pooled_dim = self.trunk.norm.normalized_shape[0]

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> shorter side to S·256/224 (aspect kept), centre crop S×S."""
        s = self.contract.image_size[0]
        h, w = x.shape[-2:]
        short = round(s * 256 / 224)
        size = (short, max(round(w * short / h), s)) if h <= w else (max(round(h * short / w), s), short)
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        top, left = (size[0] - s) // 2, (size[1] - s) // 2
        return x[..., top:top + s, left:left + s]

    @torch.no_grad()
    def encode(self, frames, background, sensor):
        c = self.contract
        x = normalise(self._geometry(to_float(frames[:, -1], self.device)), c.mean, c.std)  # newest frame
        names = sensor_list(sensor, x.shape[0])
        unknown = sorted(set(names) - set(self.sensor_to_stem))
        if unknown:
            raise ValueError(f"T3 encoder {self.name!r} has no stem for sensor(s) {unknown}; options.stems maps "
                             f"{sorted(self.sensor_to_stem)}")
        out = None
        for stem in sorted({self.sensor_to_stem[n] for n in names}):
            rows = torch.tensor([i for i, n in enumerate(names) if self.sensor_to_stem[n] == stem], device=x.device)
            part = self.stems[stem](x[rows])
            out = part.new_zeros(x.shape[0], *part.shape[1:]) if out is None else out
            out[rows] = part
        tokens = self.trunk(out)
        return tokens.float(), tokens[:, 0].float()


register_family("t3")(T3Plugin)
