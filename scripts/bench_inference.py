"""Inference throughput of the AnyTouch touch encoder: images/s and clips/s at several batch sizes.

Randomly initialised encoders (the speed does not depend on the weights): ``tiny`` and the paper's ViT-L/14
(``anytouch-l14``). On CPU in fp32; on a GPU in bf16 autocast (``--dtype``). Each point: one warm-up call, then calls
until ``--min-time`` seconds have passed (at least ``--min-iters``). An image is repeated to 3 frames inside the
encoder (docs/original/architecture.md#patch-embedding), so images and clips cost the same transformer pass; both are
measured.

    python scripts/bench_inference.py                                  # CPU: tiny and L/14, batch 1, 8, 32
    python scripts/bench_inference.py --device cuda --batch-sizes 1 8 32 128
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from anytouch.models import TouchEncoder, get_arch


def measure(encoder, x, sensor, dtype, min_time: float, min_iters: int) -> float:
    """Seconds per call."""
    dev = x.device

    def call():
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            encoder(x, sensor)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    call()  # warm-up (kernel selection, allocator)
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < min_time:
        call()
        n += 1
    return (time.perf_counter() - t0) / n


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "CPU"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "anytouch-l14"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    ap.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on GPU, fp32 on CPU")
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds measured per point (default 2)")
    ap.add_argument("--min-iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(args.dtype, torch.bfloat16 if dev.type == "cuda"
                                                                    else torch.float32)
    where = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
             else f"{cpu_name()}, {torch.get_num_threads()} threads")
    print(f"touch encoder inference, {where}, {str(dtype).replace('torch.', '')}, torch {torch.__version__}\n")
    print("| model | params | input | batch | ms / batch | items / s |\n|---|---:|---|---:|---:|---:|")
    rows = []
    for preset in args.presets:
        torch.manual_seed(0)
        enc = TouchEncoder(get_arch(preset)).to(dev).eval()
        params = sum(p.numel() for p in enc.parameters())
        s = enc.image_size
        for kind in ("image", "clip"):
            for b in args.batch_sizes:
                shape = (b, 3, s, s) if kind == "image" else (b, 3, 3, s, s)
                x = torch.randn(shape, device=dev)
                sec = measure(enc, x, torch.full((b,), -1, device=dev), dtype, args.min_time, args.min_iters)
                row = {"model": preset, "params": params, "input": kind, "batch": b, "ms_per_batch": 1e3 * sec,
                       "items_per_s": b / sec, "device": where, "dtype": str(dtype)}
                rows.append(row)
                print(f"| {preset} | {params / 1e6:.1f} M | {kind}s | {b} | {1e3 * sec:.1f} | {b / sec:.1f} |",
                      flush=True)
        del enc
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
