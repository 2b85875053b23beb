"""A Sparsh-style tactile ViT (Higuera et al., CoRL 2024, facebookresearch/sparsh) as a benchmark encoder.

Input contract (Sparsh's ``vision_transformer.py`` and data utilities): two frames I_t and I_{t-5} concatenated on
the channels, current frame first (6-channel patch embedding); each frame background-subtracted as
``uint8(clip((img - bg)/255 + 0.5, 0, 1)·255)`` when the sample has a background; landscape frames rotated 90°
clockwise and centre-cropped to the model's aspect ratio, resized to 320×240 (H×W); values in [0, 1] with no mean/std
normalisation. The ViT has no CLS token, ``num_register_tokens`` register tokens prepended, a fixed 2-D sinusoidal
position table, and returns the final-LayerNorm **patch tokens only** (registers dropped). The pooled feature is
their mean (Sparsh has none of its own; its probes always use an attentive pooler).

Weights come in Sparsh's released key layout: ``checkpoint["model"]`` with the encoder under ``target_encoder.``
(I-/V-JEPA), ``teacher_encoder.backbone.`` (DINO/DINOv2) or ``encoder.`` (MAE), or a flat state dict (safetensors),
with timm-style block names (``blocks.<i>.attn.qkv``, ``norm1``, ``mlp.fc1``, final ``norm``). The converter is strict:
every encoder key must be used and every model parameter filled; the only keys it drops are named in
``_UNUSED`` (pre-training-only tensors) and the other sub-networks of the file (predictor, student, decoder).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.layers import Transformer
from .encoders import (EncoderSpec, InputContract, TactileEncoderPlugin, as_size, check_options, register_family,
                       require_checkpoint, resize, to_float)
from .families import read_state_dict

__all__ = ["SparshViT", "sincos_pos_embed", "timm_block_map", "find_encoder_prefix", "convert_sparsh_state_dict",
           "to_sparsh_state_dict", "SparshPlugin"]

PREFIXES = ("target_encoder.", "teacher_encoder.backbone.", "encoder.")
_UNUSED = {"mask_token": "masked-modelling token, used only in pre-training"}
_EPS = 1e-6  # Sparsh's ViT LayerNorm eps


def sincos_pos_embed(dim: int, grid: Tuple[int, int]) -> torch.Tensor:
    """Fixed 2-D sine-cosine table (MAE's ``get_2d_sincos_pos_embed``): (gh·gw, dim), raster order; the first half
    encodes the column index, the second half the row index."""
    if dim % 4:
        raise ValueError(f"sinusoidal position embedding needs a width divisible by 4, got {dim}")
    gh, gw = grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def one(pos: torch.Tensor) -> torch.Tensor:
        out = pos.reshape(-1, 1).double() * omega  # (M, dim/4)
        return torch.cat([out.sin(), out.cos()], dim=1)  # (M, dim/2)

    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    return torch.cat([one(cols), one(rows)], dim=1).float()


class SparshViT(nn.Module):
    """``forward(x (B, C, H, W)) -> patch tokens (B, N, D)`` after the final LayerNorm, registers dropped."""

    def __init__(self, width: int, depth: int, heads: int, mlp_width: int, patch_size: int, in_chans: int,
                 registers: int, image_size: Tuple[int, int]):
        super().__init__()
        if image_size[0] % patch_size or image_size[1] % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
        self.width, self.patch_size, self.in_chans, self.image_size = width, patch_size, in_chans, tuple(image_size)
        self.grid = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.patch_embed = nn.Conv2d(in_chans, width, patch_size, patch_size)
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, width)) if registers else None
        self.register_buffer("pos_embed", sincos_pos_embed(width, self.grid)[None], persistent=False)
        self.blocks = Transformer(width, depth, heads, mlp_width, _EPS, "gelu")
        self.norm = nn.LayerNorm(width, eps=_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, C, gh, gw) -> (B, N, D)
        x = x + self.pos_embed
        r = 0
        if self.register_tokens is not None:
            r = self.register_tokens.shape[1]
            x = torch.cat([self.register_tokens.expand(x.shape[0], -1, -1), x], dim=1)  # (B, R + N, D)
        return self.norm(self.blocks(x))[:, r:]


def find_encoder_prefix(sd: Dict[str, torch.Tensor], where: str) -> str:
    """The prefix of the encoder's keys: one of ``PREFIXES`` (or "" for a flat file), decided by which one holds
    ``patch_embed.proj.weight``; zero or several candidates are a ValueError."""
    found = [p for p in PREFIXES + ("",) if f"{p}patch_embed.proj.weight" in sd]
    if len(found) != 1:
        raise ValueError(f"{where}: expected exactly one Sparsh encoder (a 'patch_embed.proj.weight' under one of "
                         f"{', '.join(repr(p) for p in PREFIXES)} or at the top level), found {found or 'none'}")
    return found[0]


def timm_block_map(i: int, d: int) -> List[Tuple[str, str, slice]]:
    """(timm-style key, our :class:`~anytouch.models.layers.Block` key, rows taken) for block ``i`` of width ``d``;
    the fused qkv is split row-wise into q, k, v."""
    s, o = f"blocks.{i}.", f"blocks.{i}."
    rows = {"q": slice(0, d), "k": slice(d, 2 * d), "v": slice(2 * d, 3 * d)}
    out = [(s + f"attn.qkv.{t}", o + f"self_attn.{n}_proj.{t}", rows[n]) for n in "qkv" for t in ("weight", "bias")]
    for theirs, ours in (("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("attn.proj", "self_attn.out_proj"),
                         ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
        out += [(s + f"{theirs}.{t}", o + f"{ours}.{t}", slice(None)) for t in ("weight", "bias")]
    return out


def convert_sparsh_state_dict(raw: Dict[str, torch.Tensor], image_size: Tuple[int, int], heads: int = 0,
                              where: str = "<state dict>") -> Tuple[SparshViT, List[str]]:
    """Build a :class:`SparshViT` from a Sparsh checkpoint's tensors (prefix found by :func:`find_encoder_prefix`).

    The architecture is read from the shapes (width, depth, patch size, input channels, registers, MLP width);
    ``heads`` defaults to width // 64 (ViT-S 6, ViT-B 12). A stored ``pos_embed`` replaces the sinusoidal table,
    resized bicubically when ``image_size`` gives another grid. Returns (model, notes on what was dropped).
    Raises ValueError naming every encoder key left unused and every parameter left unfilled.
    """
    prefix = find_encoder_prefix(raw, where)
    sd = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}
    w = sd["patch_embed.proj.weight"]  # (D, C, p, p)
    d, in_chans, p = w.shape[0], w.shape[1], w.shape[2]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    regs = sd["register_tokens"].shape[1] if "register_tokens" in sd else 0
    mlp = sd["blocks.0.mlp.fc1.weight"].shape[0] if depth else 4 * d
    model = SparshViT(d, depth, heads or max(d // 64, 1), mlp, p, in_chans, regs, image_size)
    ours: Dict[str, torch.Tensor] = {}
    used = set()

    def take(theirs: str, mine: str, rows: slice = slice(None)) -> None:
        if theirs in sd:
            ours[mine] = sd[theirs][rows]
            used.add(theirs)

    for theirs, mine in (("patch_embed.proj.weight", "patch_embed.weight"), ("patch_embed.proj.bias",
                         "patch_embed.bias"), ("norm.weight", "norm.weight"), ("norm.bias", "norm.bias"),
                         ("register_tokens", "register_tokens")):
        take(theirs, mine)
    for i in range(depth):
        for theirs, mine, rows in timm_block_map(i, d):
            take(theirs, mine, rows)
    notes = [f"dropped {k}: {why}" for k, why in _UNUSED.items() if k in sd]
    used |= set(_UNUSED)
    if "pos_embed" in sd:
        model.pos_embed = _resize_pos(sd["pos_embed"], model.grid, where)
        used.add("pos_embed")
    left = sorted(set(sd) - used)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    bad = sorted(k for k, v in ours.items() if k in expected and v.shape != expected[k].shape)
    if left or missing or bad:
        raise ValueError(f"{where}: Sparsh checkpoint does not match the ViT read from its shapes: unused keys "
                         f"{left}, missing {missing}, wrong shapes {bad}")
    model.load_state_dict({k: ours[k] for k in expected}, strict=True)
    others = sorted({k[: k.index(".")] for k in raw if not k.startswith(prefix) and "." in k})
    if others:
        notes.append(f"ignored the file's other sub-networks: {', '.join(others)}")
    return model, notes


def to_sparsh_state_dict(model: SparshViT, prefix: str = "target_encoder.") -> Dict[str, torch.Tensor]:
    """The inverse of :func:`convert_sparsh_state_dict`: ``model``'s weights in Sparsh's key layout under
    ``prefix`` (q, k, v fused into ``attn.qkv``), e.g. to ship tiny test encoders in the released format."""
    sd = model.state_dict()
    out = {"patch_embed.proj.weight": sd["patch_embed.weight"], "patch_embed.proj.bias": sd["patch_embed.bias"],
           "norm.weight": sd["norm.weight"], "norm.bias": sd["norm.bias"]}
    if model.register_tokens is not None:
        out["register_tokens"] = sd["register_tokens"]
    for i in range(len(model.blocks)):
        pairs = timm_block_map(i, model.width)
        for theirs, mine, rows in pairs:
            if ".qkv." not in theirs:
                out[theirs] = sd[mine]
        for t in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{t}"] = torch.cat([sd[f"blocks.{i}.self_attn.{n}_proj.{t}"] for n in "qkv"])
    return {prefix + k: v.clone() for k, v in out.items()}


def _resize_pos(pos: torch.Tensor, grid: Tuple[int, int], where: str) -> torch.Tensor:
    """A stored (1, N, D) table -> (1, gh·gw, D); a square stored grid is resized bicubically to ``grid``."""
    n, d = pos.shape[-2:]
    if n == grid[0] * grid[1]:
        return pos.reshape(1, n, d).float()
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"{where}: pos_embed has {n} rows, neither the model's {grid} grid nor a square grid")
    table = pos.reshape(1, side, side, d).permute(0, 3, 1, 2).float()
    table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
    return table.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], d)


class SparshPlugin(TactileEncoderPlugin):
    """Options: ``image_size`` ([320, 240]), ``stride`` (5, source frames between the two inputs), ``heads``
    (width // 64), ``background`` (true: subtract the sample's background when it has one; false for marker
    GelSight'17 data, as Sparsh does), ``rotate`` ("auto": landscape frames turned 90° clockwise; "none")."""

    def __init__(self, spec: EncoderSpec):
        super().__init__()
        opt = check_options(spec, {"image_size": [320, 240], "stride": 5, "heads": 0, "background": True,
                                   "rotate": "auto"})
        if opt["rotate"] not in ("auto", "none"):
            raise ValueError(f"{spec.source}: options.rotate must be 'auto' or 'none', got {opt['rotate']!r}")
        path = require_checkpoint(spec)
        size = as_size(opt["image_size"], spec.source)
        self.vit, self.notes = convert_sparsh_state_dict(read_state_dict(Path(path), spec.source), size,
                                                         int(opt["heads"]), spec.source)
        if self.vit.in_chans % 3:
            raise ValueError(f"{spec.source}: patch embedding takes {self.vit.in_chans} channels, not a multiple of 3")
        self.rotate, self.use_background = opt["rotate"], bool(opt["background"])
        self.contract = InputContract(size, None, None, self.use_background, self.vit.in_chans // 3,
                                      int(opt["stride"]), "stacked")
        self.embed_dim = self.pooled_dim = self.vit.width

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) -> rotated (landscape -> portrait), centre-cropped to the target aspect, resized."""
        th, tw = self.contract.image_size
        if self.rotate == "auto" and x.shape[-1] > x.shape[-2] and th >= tw:
            x = torch.rot90(x, k=-1, dims=(-2, -1))  # clockwise
        h, w = x.shape[-2:]
        if h * tw > w * th:  # too tall: crop rows
            ch = round(w * th / tw)
            x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, :]
        elif h * tw < w * th:
            cw = round(h * tw / th)
            x = x[..., (w - cw) // 2:(w - cw) // 2 + cw]
        return resize(x, (th, tw))

    @torch.no_grad()
    def encode(self, frames, background, sensor):
        x = to_float(frames, self.device)  # (B, T, 3, H, W), oldest first
        if self.use_background and background is not None:
            bg = to_float(background, self.device)
            x = torch.floor((x - bg[:, None] + 0.5).clamp(0, 1) * 255) / 255  # Sparsh re-quantises to uint8
        x = self._geometry(x)
        x = x.flip(1).flatten(1, 2)  # newest frame first on the channels: (B, T·3, H, W)
        tokens = self.vit(x)
        return tokens.float(), tokens.mean(dim=1).float()


register_family("sparsh")(SparshPlugin)
