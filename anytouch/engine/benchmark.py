"""Pieces shared by the training-step benchmarks in ``scripts/`` (stage 1 and stage 2): their common command-line
options, the device choice, a timed loop that synchronises CUDA, and the per-step report with MFU."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from anytouch.engine.logging import peak_memory_gb

__all__ = [
    "add_step_options", "resolve_device", "device_name", "known_peak_tflops", "time_steps", "step_report", "write_json",
]

# dense bf16 / fp16 tensor-core peaks (TFLOP/s) from the vendors' datasheets, by a substring of the CUDA device name;
# the first match wins (so "H100 PCIe" before "H100")
_PEAK_HALF_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0))


def add_step_options(ap: argparse.ArgumentParser, what: str = "encoder blocks") -> None:
    """The options every training-step benchmark takes."""
    ap.add_argument("--preset", default="tiny", help="architecture preset or CLIP config.json (default: tiny)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default: 10)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | bf16 | fp16 | fp32")
    ap.add_argument("--grad-checkpointing", action="store_true", help=f"recompute {what} in backward")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="the device's peak TFLOP/s at this precision, for MFU (default: the datasheet value of a "
                         "known GPU in bf16/fp16, e.g. 989 for H100 SXM / H200)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    return dev


def known_peak_tflops(device: torch.device, dtype: torch.dtype) -> Optional[float]:
    """The datasheet peak of a known GPU at bf16 / fp16 (dense), for MFU when ``--peak-tflops`` is not given."""
    if device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf for key, tf in _PEAK_HALF_TFLOPS if key in name), None)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[int], None], steps: int, device: torch.device, first: int = 0) -> List[float]:
    """Seconds of each of ``steps`` calls ``step(first + i)``, CUDA synchronised around each; peak-memory statistics
    are reset first, so :func:`step_report` sees the timed steps only."""
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(steps):
        tic = time.perf_counter()
        step(first + i)
        _sync(device)
        times.append(time.perf_counter() - tic)
    return times


def step_report(times: List[float], batch_size: int, train_flops: float, device: torch.device,
                peak_tflops: Optional[float] = None) -> Dict[str, float]:
    """Median step time, samples/s, peak memory, achieved TFLOP/s and (given the peak) MFU of timed steps.

    ``train_flops``: FLOPs of one whole training step (all samples, forward and backward)."""
    step_s = statistics.median(times)
    res = {"batch_size": batch_size, "step_ms_median": step_s * 1e3, "step_ms_mean": statistics.mean(times) * 1e3,
           "samples_per_s": batch_size / step_s, "peak_mem_gb": peak_memory_gb(device),
           "train_gflop_per_step": train_flops / 1e9, "achieved_tflops": train_flops / step_s / 1e12}
    if peak_tflops:
        res["mfu"] = res["achieved_tflops"] / peak_tflops
    return res


def write_json(path: Optional[str], res: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(res, f, indent=1)
