"""One-table accelerator check: training-step throughput and MFU, device augmentation, inference, bf16 accuracy.

On a CUDA device (bf16, ViT-L/14 ``anytouch-l14``, the paper's per-GPU batches: stage 1 64 images / 64 clips,
stage 2 64 alignment / 32 cross-sensor samples) it measures, in this order:

* stage-1 step (TouchMAE forward + backward + AdamW, images and clips alternating): samples/s and MFU;
* stage-2 steps (alignment + MAE, cross-sensor matching): samples/s and MFU per batch type;
* :func:`anytouch.data.device_aug.apply_touch_aug` on uint8 batches of 256 images and 256 4-frame clips;
* touch-encoder inference, images/s at batch 1, 64 and 256;
* bf16 autocast vs fp32 features of the same encoder on the same batch (max |delta| relative to the largest
  feature magnitude, and the lowest cosine similarity).

Without CUDA it says so and exits 0. ``--device cpu --tiny`` runs every code path on the CPU with the tiny
architecture and small batches, in seconds (a dry run for tests; its figures mean nothing).

    bash scripts/gpu_check.sh                   # on a GPU box, < 8 minutes on one H200
    bash scripts/gpu_check.sh --device cpu --tiny
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmark scripts
import bench_data  # noqa: E402
import bench_inference  # noqa: E402
import bench_stage2  # noqa: E402
import bench_train  # noqa: E402

from anytouch.models import TouchEncoder, get_arch  # noqa: E402


def quiet(fn, argv):
    """Run a benchmark's ``main(argv)`` without its own printout; returns its result."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(argv)


def feature_difference(preset: str, batch: int, device: torch.device):
    """(max |f_bf16 - f_fp32| / max |f_fp32|, min cosine) of the encoder's features on one random batch."""
    torch.manual_seed(0)
    enc = TouchEncoder(get_arch(preset)).to(device).eval()
    s = enc.image_size
    x = torch.randn(batch, 3, s, s, device=device)
    sensor = torch.full((batch,), -1, device=device)
    with torch.inference_mode():
        ref = enc(x, sensor).float()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = enc(x, sensor).float()
    rel = ((low - ref).abs().max() / ref.abs().max()).item()
    return rel, torch.nn.functional.cosine_similarity(low, ref, dim=-1).min().item()


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) | cpu (with --tiny: a dry run)")
    ap.add_argument("--tiny", action="store_true", help="tiny architecture and small batches (dry run)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per training benchmark")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device available (torch.cuda.is_available() is False); nothing to check")
        return []
    preset = "tiny" if a.tiny else "anytouch-l14"
    b1, b2a, b2c = (4, 4, 2) if a.tiny else (64, 64, 32)
    steps = a.steps or (1 if a.tiny else 10)
    infer_batches = (1, 4, 8) if a.tiny else (1, 64, 256)
    aug_batch, aug_size = (8, 32) if a.tiny else (256, 224)
    precision = "bf16" if device.type == "cuda" else "fp32"  # the training loop allows bf16 on CUDA only
    common = ["--preset", preset, "--device", a.device, "--precision", precision, "--steps", str(steps),
              "--warmup", "1" if a.tiny else "3"]
    rows = []  # (what, batch, throughput text, MFU text)
    tic = time.perf_counter()

    s1 = quiet(bench_train.main, common + ["--batch-size", str(b1), "--kind", "mixed"])
    rows.append(("stage-1 step (image/clip mixed)", b1, f"{s1['samples_per_s']:.1f} samples/s",
                 f"{s1['mfu']:.1%}" if "mfu" in s1 else "n/a"))
    s2 = quiet(bench_stage2.main, common + ["--align-batch", str(b2a), "--cross-batch", str(b2c)])
    for kind, r in s2["kinds"].items():
        rows.append((f"stage-2 step ({kind})", r["batch_size"], f"{r['samples_per_s']:.1f} samples/s",
                     f"{r['mfu']:.1%}" if "mfu" in r else "n/a"))
    for kind, t in (("image", 1), ("clip", 4)):
        ms = bench_data.device_aug_ms(device, aug_batch, aug_size, t)
        rows.append((f"device augmentation ({kind}s, {aug_size}px)", aug_batch, f"{aug_batch / ms * 1e3:.0f} samples/s",
                     f"{ms:.2f} ms/batch"))
    torch.manual_seed(0)
    enc = TouchEncoder(get_arch(preset)).to(device).eval()
    s = enc.image_size
    for b in infer_batches:
        x = torch.randn(b, 3, s, s, device=device)
        sec = bench_inference.measure(enc, x, torch.full((b,), -1, device=device), torch.bfloat16,
                                      0.05 if a.tiny else 2.0, 2)
        rows.append(("encoder inference (bf16 images)", b, f"{b / sec:.1f} images/s", f"{sec * 1e3:.2f} ms/batch"))
    del enc
    rel, cos = feature_difference(preset, 8 if a.tiny else 64, device)
    rows.append(("bf16 vs fp32 features", 8 if a.tiny else 64, f"max|d|/max|f| {rel:.2e}", f"min cos {cos:.5f}"))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)"
    print(f"gpu_check: {name}, {preset}, training in {precision}, torch {torch.__version__}, {time.perf_counter() - tic:.0f} s")
    print(f"| {'measurement':<38} | {'batch':>5} | {'throughput':<26} | {'MFU / other':<16} |")
    print(f"|{'-' * 40}|{'-' * 7}|{'-' * 28}|{'-' * 18}|")
    for what, b, thr, extra in rows:
        print(f"| {what:<38} | {b:>5} | {thr:<26} | {extra:<16} |")
    return rows


if __name__ == "__main__":
    main()
