"""Benchmark one stage-1 training step (TouchMAE forward + backward + AdamW) on random data.

Reports step time, samples/s, peak memory and -- given the accelerator's peak -- model FLOP utilisation, with FLOPs
counted analytically (anytouch.engine.flops: encoder on the visible tokens, decoder on all tokens, train = 3x
forward). Uses the training loop's own pieces (AdamW parameter groups, autocast / GradScaler, fused optimizer).

    python scripts/bench_train.py --preset tiny --batch-size 64                      # CPU smoke
    python scripts/bench_train.py --preset anytouch-l14 --batch-size 64 --peak-tflops 989   # H100 SXM bf16 dense
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from anytouch.engine.flops import mae_forward_flops
from anytouch.engine.logging import peak_memory_gb
from anytouch.engine.optim import build_adamw
from anytouch.engine.step import Stepper
from anytouch.models import TouchMAE, get_arch


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="architecture preset or CLIP config.json (default: tiny)")
    ap.add_argument("--batch-size", type=int, default=64, help="samples per step (default: 64)")
    ap.add_argument("--kind", choices=("image", "video", "mixed"), default="mixed",
                    help="image batches, 4-frame video batches, or alternating as in training (default)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default: 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32")
    ap.add_argument("--mask-ratio", type=float, default=0.75)
    ap.add_argument("--grad-checkpointing", action="store_true", help="recompute encoder blocks in backward")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak TFLOP/s at this precision, for MFU (e.g. 989 for H100 SXM bf16)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    arch = get_arch(args.preset)
    model = TouchMAE(arch).to(device)
    if args.grad_checkpointing:
        model.encoder.set_grad_checkpointing()
    optimizer = build_adamw(model, lr=1e-4, weight_decay=0.1)
    stepper = Stepper(model, optimizer, device, args.precision)
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

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for i in range(args.warmup):
        step(i)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.steps):
        tic = time.perf_counter()
        step(args.warmup + i)
        sync()
        times.append(time.perf_counter() - tic)

    flops_fwd = statistics.mean(mae_forward_flops(arch, args.mask_ratio, k == "video")["total"] for k in kinds) * b
    step_s = statistics.median(times)
    res = {
        "preset": args.preset, "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
        "precision": str(stepper.dtype).replace("torch.", ""), "kind": args.kind, "batch_size": b,
        "step_ms_median": step_s * 1e3, "step_ms_mean": statistics.mean(times) * 1e3,
        "samples_per_s": b / step_s, "peak_mem_gb": peak_memory_gb(device),
        "train_gflop_per_step": 3 * flops_fwd / 1e9, "achieved_tflops": 3 * flops_fwd / step_s / 1e12,
    }
    if args.peak_tflops:
        res["mfu"] = res["achieved_tflops"] / args.peak_tflops
    for k, v in res.items():
        print(f"{k:>22}: {v:.4g}" if isinstance(v, float) else f"{k:>22}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
