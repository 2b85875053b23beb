"""Test helpers for the benchmark: a tiny bench task family following the task-module contract (raw uint8 frames
oldest first, a background, sensor name, target, group), a scorer, and tiny encoder weights in each family's layout
(written here from the upstream key names, independently of the converters).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from anytouch.checkpoint import ours
from anytouch.models import TouchMAE
from anytouch.models.config import get_arch


@dataclass(frozen=True)
class FakeTask:
    name: str
    dataset: str
    kind: str
    num_outputs: int
    metrics: Tuple[str, ...]
    frames: int = 3
    stride: int = 1
    splits: Tuple[str, ...] = ("train", "val", "test")
    views: int = 1


TASKS = (
    FakeTask("fake_texture", "fake", "classification", 3, ("accuracy",)),
    FakeTask("fake_force", "fake", "regression", 2, ("rmse",)),
    FakeTask("fake_slip", "fake", "binary", 1, ("accuracy",)),
)
SIZES = {"train": 24, "val": 12, "test": 12}


class FakePress(Dataset):
    """Synthetic presses: a bright disc whose radius grows over the clip; the class is the disc's colour channel,
    the force (N) is a known function of the final radius, slip is whether the disc moved sideways."""

    def __init__(self, task: FakeTask, split: str, seed: int = 0, h: int = 24, w: int = 32):
        self.task, self.split = task, split
        rng = np.random.default_rng(zlib.crc32(f"{task.name}|{split}|{seed}".encode()))
        n = SIZES[split]
        self.cls = rng.integers(0, 3, n)
        self.radius = rng.uniform(2.0, 9.0, n)
        self.slip = rng.integers(0, 2, n)
        self.h, self.w, self.n = h, w, n

    def __len__(self) -> int:
        return self.n

    def labels(self):
        if self.task.kind == "classification":
            return [int(c) for c in self.cls]
        if self.task.kind == "binary":
            return [int(s) for s in self.slip]
        return None

    def __getitem__(self, i: int) -> Dict:
        yy, xx = np.mgrid[: self.h, : self.w]
        bg = np.full((self.h, self.w, 3), 90, np.uint8)
        frames = []
        for t in range(self.task.frames):
            r = self.radius[i] * (t + 1) / self.task.frames
            cx = self.w / 2 + (3 * t if self.slip[i] else 0)
            disc = (yy - self.h / 2) ** 2 + (xx - cx) ** 2 < r * r
            f = bg.copy()
            f[disc, int(self.cls[i])] = 250
            frames.append(f)
        if self.task.kind == "classification":
            target = torch.tensor(int(self.cls[i]))
        elif self.task.kind == "binary":
            target = torch.tensor(int(self.slip[i]))
        else:
            target = torch.tensor([0.4 * self.radius[i] ** 2 / 10, 0.1 * self.radius[i]], dtype=torch.float32)
        return {"frames": torch.from_numpy(np.stack(frames)), "background": torch.from_numpy(bg),
                "has_background": True, "sensor": "gelsight", "target": target, "source": "fake",
                "group": f"g{i % 4}"}


def build_fake_dataset(task, split, root=None, synthetic=False, budget=1.0, seed=0, image_size=(24, 32)):
    return FakePress(task, split, seed, *image_size)


class FakeScorer:
    def __init__(self):
        self.calls = []

    def score(self, task, pred, target, groups):
        self.calls.append((task.name, len(target)))
        if task.kind == "regression":
            return {"rmse": float(((pred - target.float()) ** 2).mean().sqrt())}
        hit = (pred.argmax(1) if task.kind == "classification" else (pred > 0).long()) == target
        return {"accuracy": float(hit.float().mean())}

    def higher_is_better(self, metric):
        return metric != "rmse"


# -- tiny encoder weights in each family's own layout ------------------------------------------------------
def write_yaml(path: Path, family: str, checkpoint=None, **options) -> Path:
    body = {"family": family, "options": options}
    if checkpoint is not None:
        body["checkpoint"] = str(checkpoint)
    path.write_text(yaml.safe_dump(body))
    return path


def anytouch1_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    return ours.save_checkpoint(path, TouchMAE(get_arch("tiny")).eval())


def timm_block(prefix: str, d: int, mlp: int, gen: torch.Generator) -> Dict[str, torch.Tensor]:
    """timm ``Block`` keys: norm1, attn.qkv (3D, D), attn.proj, norm2, mlp.fc1, mlp.fc2."""
    r = lambda *s: 0.1 * torch.randn(*s, generator=gen)  # noqa: E731
    return {f"{prefix}norm1.weight": 1 + r(d), f"{prefix}norm1.bias": r(d),
            f"{prefix}attn.qkv.weight": r(3 * d, d), f"{prefix}attn.qkv.bias": r(3 * d),
            f"{prefix}attn.proj.weight": r(d, d), f"{prefix}attn.proj.bias": r(d),
            f"{prefix}norm2.weight": 1 + r(d), f"{prefix}norm2.bias": r(d),
            f"{prefix}mlp.fc1.weight": r(mlp, d), f"{prefix}mlp.fc1.bias": r(mlp),
            f"{prefix}mlp.fc2.weight": r(d, mlp), f"{prefix}mlp.fc2.bias": r(d)}


def sparsh_state(d=32, depth=2, patch=8, registers=1, prefix="target_encoder.", seed=0) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd = {"patch_embed.proj.weight": 0.1 * torch.randn(d, 6, patch, patch, generator=gen),
          "patch_embed.proj.bias": 0.1 * torch.randn(d, generator=gen),
          "norm.weight": torch.ones(d), "norm.bias": torch.zeros(d), "mask_token": torch.zeros(1, 1, d)}
    if registers:
        sd["register_tokens"] = torch.randn(1, registers, d, generator=gen)
    for i in range(depth):
        sd.update(timm_block(f"blocks.{i}.", d, 2 * d, gen))
    return {prefix + k: v for k, v in sd.items()}


def sparsh_checkpoint(path: Path, **kw) -> Path:
    """A Sparsh training checkpoint: ``{"model": {...encoder under a prefix..., "predictor...": ...}}``."""
    model = sparsh_state(**kw)
    model["predictor.proj.weight"] = torch.zeros(4, 4)
    torch.save({"model": model, "epoch": 3}, path)
    return path


def t3_folder(root: Path, stems=("gs_green",), d=32, patch=8, side=32, depth=(1, 1)) -> Path:
    gen = torch.Generator().manual_seed(1)
    (root / "encoders").mkdir(parents=True, exist_ok=True)
    n = (side // patch) ** 2
    for name in stems:
        sd = {"patch_embed.proj.weight": 0.1 * torch.randn(d, 3, patch, patch, generator=gen),
              "patch_embed.proj.bias": 0.1 * torch.randn(d, generator=gen),
              "cls_token": torch.randn(1, 1, d, generator=gen),
              "pos_embed": 0.1 * torch.randn(1, n + 1, d, generator=gen)}
        for i in range(depth[0]):
            sd.update(timm_block(f"blocks.{i}.", d, 2 * d, gen))
        torch.save(sd, root / "encoders" / f"{name}.pth")
    sd = {"norm.weight": torch.ones(d), "norm.bias": torch.zeros(d)}
    for i in range(depth[1]):
        sd.update(timm_block(f"blocks.{i}.", d, 2 * d, gen))
    torch.save(sd, root / "trunk.pth")
    return root


def naive_timm_vit(x: torch.Tensor, sd: Dict[str, torch.Tensor], prefix: str, depth: int, heads: int,
                   eps: float = 1e-6) -> torch.Tensor:
    """Reference forward of timm blocks on tokens x (B, L, D), written from the fused-qkv layout."""
    F = torch.nn.functional
    for i in range(depth):
        p = f"{prefix}blocks.{i}."
        h = F.layer_norm(x, x.shape[-1:], sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        b, n, d = h.shape
        qkv = (h @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]).view(b, n, 3, heads, d // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2) / (d // heads) ** 0.5).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = x + y @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        h = F.layer_norm(x, x.shape[-1:], sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        h = F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        x = x + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
    return x
