"""Benchmark the stage-2 training steps (alignment + MAE, cross-sensor matching) on random data.

One timed section per batch type (``image``, ``video``: alignment + MAE; ``image_cross``, ``video_cross``: matching),
each a full training step: the stage-2 objective's forward, backward and the AdamW update, with the training loop's
own pieces (``Stage2Objective``, ``set_stage2_trainable``, AdamW parameter groups, autocast / GradScaler). Every
alignment sample has a camera image and a caption (the most expensive case).

Reports step time, samples/s, peak memory and -- given the accelerator's peak -- model FLOP utilisation. FLOPs are
counted analytically with anytouch.engine.flops (matrix multiplies only). Per alignment sample: an unmasked touch
pass (1 + 5 + N tokens, 262 at ViT-L/14) and the MAE (masked encoder on 70 tokens + decoder on 262), trained: 3x
forward; the vision tower (257 tokens), whose frozen base weights need no weight gradients: 2x forward; the frozen
text tower (77 tokens), forward only: 1x. Per cross sample: three unmasked touch passes, 3x forward.

    python scripts/bench_stage2.py --preset tiny                                   # CPU smoke
    python scripts/bench_stage2.py --preset anytouch-l14 --peak-tflops 989         # H100 SXM bf16 dense
"""
from __future__ import annotations

import argparse
from typing import Dict

import torch

from anytouch.engine.benchmark import (add_step_options, device_name, known_peak_tflops, resolve_device, step_report,
                                       time_steps, write_json)
from anytouch.engine.flops import mae_forward_flops, transformer_flops
from anytouch.engine.optim import build_adamw
from anytouch.engine.step import Stepper
from anytouch.losses import Stage2Objective
from anytouch.models import AnyTouchModel, get_arch
from anytouch.models.config import ArchConfig

KINDS = ("image", "video", "image_cross", "video_cross")


def tower_forward_flops(tokens: int, tower, patch_tokens: int, in_per_patch: int, projection_dim: int) -> int:
    """Patch embedding + blocks + the projection of one pooled token, for one sample."""
    return (2 * patch_tokens * tower.width * in_per_patch + transformer_flops(tokens, tower.width, tower.layers,
            tower.mlp_width) + 2 * tower.width * projection_dim)


def stage2_step_flops(arch: ArchConfig, kind: str, mask_ratio: float = 0.75) -> Dict[str, int]:
    """Training FLOPs of one sample of a ``kind`` batch (an anchor for cross kinds), by part, and ``total``."""
    t, v, p = arch.touch, arch.vision, arch.touch.patch_size
    prefix = 1 + arch.tokens_per_sensor
    touch = tower_forward_flops(prefix + t.num_patches, t, t.num_patches, arch.num_frames * 3 * p * p,
                                arch.projection_dim)
    if kind.endswith("cross"):
        parts = {"touch_unmasked_x3": 3 * 3 * touch}
    else:
        text = arch.text
        parts = {
            "touch_unmasked": 3 * touch,
            "mae": 3 * mae_forward_flops(arch, mask_ratio, video=kind == "video")["total"],
            "vision": 2 * tower_forward_flops(1 + v.num_patches, v, v.num_patches, 3 * v.patch_size ** 2,
                                              arch.projection_dim),
            "text": transformer_flops(text.context_length, text.width, text.layers, text.mlp_width)
            + 2 * text.width * arch.projection_dim,
        }
    parts["total"] = sum(parts.values())
    return parts


def random_batch(arch: ArchConfig, kind: str, b: int, device: torch.device) -> Dict[str, torch.Tensor]:
    s, n = arch.touch.image_size, arch.touch.num_patches
    sensor = lambda: torch.randint(-1, 5, (b,), device=device)  # noqa: E731
    if kind.endswith("cross"):
        shape = (b, arch.num_frames, 3, s, s) if kind == "video_cross" else (b, 3, s, s)
        return {**{r: torch.randn(shape, device=device) for r in ("anchor", "positive", "negative")},
                **{f"{r}_sensor": sensor() for r in ("anchor", "positive", "negative")}}
    ids = torch.randint(1, 49000, (b, arch.text.context_length), device=device)
    ids[:, -1] = 49407  # end of text at the last position: the whole context is attended
    touch = (b, arch.pred_frames, 3, s, s) if kind == "video" else (b, 3, s, s)
    vs = arch.vision.image_size
    return {"touch": torch.randn(touch, device=device), "sensor": sensor(),
            "vision": torch.randn(b, 3, vs, vs, device=device), "vision_flag": torch.ones(b, device=device),
            "text_ids": ids, "text_mask": torch.ones_like(ids), "text_flag": torch.ones(b, device=device),
            "noise": torch.rand(b, n, device=device)}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_options(ap, "touch/vision blocks")
    ap.add_argument("--align-batch", type=int, default=64, help="alignment samples per step (default: 64)")
    ap.add_argument("--cross-batch", type=int, default=32, help="cross-sensor anchors per step (default: 32)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    kinds = list(dict.fromkeys(k for k in args.kinds.split(",") if k))
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SystemExit(f"--kinds: unknown {sorted(unknown)}; expected a subset of {', '.join(KINDS)}")
    device = resolve_device(args.device)
    arch = get_arch(args.preset)
    model = AnyTouchModel(arch).to(device)
    model.set_stage2_trainable()
    if args.grad_checkpointing:
        model.set_grad_checkpointing()
    objective = Stage2Objective(model, alpha_vt=1.0, cross_alpha=0.1)
    stepper = Stepper(objective, build_adamw(model, lr=1e-4, weight_decay=0.1), device, args.precision)
    peak = args.peak_tflops or known_peak_tflops(device, stepper.dtype)
    res = {"preset": args.preset, "precision": str(stepper.dtype).replace("torch.", ""),
           "device": device_name(device), "kinds": {}}
    batches = {k: random_batch(arch, k, args.cross_batch if k.endswith("cross") else args.align_batch, device)
               for k in kinds}

    def step(kind: str) -> None:
        with stepper.autocast():
            out = objective(batches[kind])
        stepper.backward(out["loss"])
        stepper.step(1e-4)

    for kind in kinds:  # every kind warms up before any is timed (allocator, kernels, AdamW state)
        for _ in range(args.warmup):
            step(kind)
    for kind in kinds:
        times = time_steps(lambda _i: step(kind), args.steps, device)
        b = len(batches[kind]["anchor" if kind.endswith("cross") else "touch"])
        r = step_report(times, b, stage2_step_flops(arch, kind)["total"] * b, device, peak)
        res["kinds"][kind] = r
        print(f"{kind:>12}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
              flush=True)
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
