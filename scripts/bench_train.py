"""Benchmark one stage-1 training step (TouchMAE forward + backward + AdamW) on random data.

Reports step time, samples/s, peak memory and -- given the accelerator's peak -- model FLOP utilisation, with FLOPs
counted analytically (anytouch.engine.flops: encoder on the visible tokens, decoder on all tokens, train = 3x
forward). Uses the training loop's own pieces (AdamW parameter groups, autocast / GradScaler, fused optimizer).

    python scripts/bench_train.py --preset tiny --batch-size 64                      # CPU smoke
    python scripts/bench_train.py --preset anytouch-l14 --batch-size 64 --peak-tflops 989   # H100 SXM bf16 dense
"""
from __future__ import annotations

import argparse
import statistics

import torch

from anytouch.engine.benchmark import (add_step_options, device_name, known_peak_tflops, resolve_device, step_report,
                                       time_steps, write_json)
from anytouch.engine.flops import mae_forward_flops
from anytouch.engine.optim import build_adamw
from anytouch.engine.step import Stepper
from anytouch.models import TouchMAE, get_arch


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_options(ap, "encoder blocks")
    ap.add_argument("--batch-size", type=int, default=64, help="samples per step (default: 64)")
    ap.add_argument("--kind", choices=("image", "video", "mixed"), default="mixed",
                    help="image batches, 4-frame video batches, or alternating as in training (default)")
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    arch = get_arch(args.preset)
    model = TouchMAE(arch).to(device)
    if args.grad_checkpointing:
        model.encoder.set_grad_checkpointing()
    optimizer = build_adamw(model, lr=1e-4, weight_decay=0.1)
    stepper = Stepper(model, optimizer, device, args.precision)
    peak = args.peak_tflops or known_peak_tflops(device, stepper.dtype)
    b, s, n = args.batch_size, arch.touch.image_size, arch.touch.num_patches
    batches = {"image": torch.randn(b, 3, s, s, device=device),
               "video": torch.randn(b, arch.pred_frames, 3, s, s, device=device)}
    sensor = torch.randint(-1, 5, (b,), device=device)
    kinds = ["image", "video"] if args.kind == "mixed" else [args.kind]

    def step(i: int) -> None:
        touch = batches[kinds[i % len(kinds)]]
        with stepper.autocast():
            out = model(touch, sensor, mask_ratio=args.mask_ratio, noise=torch.rand(b, n, device=device))
        stepper.backward(out["loss"])
        stepper.step(1e-4)

    for i in range(args.warmup):
        step(i)
    times = time_steps(step, args.steps, device, first=args.warmup)
    flops_fwd = statistics.mean(mae_forward_flops(arch, args.mask_ratio, k == "video")["total"] for k in kinds) * b
    res = {"preset": args.preset, "device": device_name(device), "precision": str(stepper.dtype).replace("torch.", ""),
           "kind": args.kind, **step_report(times, b, 3 * flops_fwd, device, peak)}
    for k, v in res.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")
    write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
