"""Wall time of the official and the cached linear-probe protocols on the same data in the same process, and the
feature-extraction throughput (images/s) of the cached protocol.

    python scripts/bench_probe.py                                   # ViT-L/14 (random init) on GPU, tiny on CPU
    python scripts/bench_probe.py --preset small --task of2 --samples 512 --epochs 5
    python scripts/bench_probe.py --checkpoint log/checkpoint.pth --data-root tactile_datasets --task tag_material

The task's recipe comes from ``configs/probe_<task>.yaml`` (docs/original/probes.md#protocol: lr, weight decay, pooling,
sensor); epochs and batch size from the arguments. Both protocols train on the whole training set and evaluate the test
set after every epoch (no validation run); the cached protocol trains its whole lr x weight-decay grid. A second cached
run shows the time with a warm cache. Prints a Markdown table and writes it, with the raw timings, to ``--output-dir``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from anytouch.config import load_config
from anytouch.engine.dist import init_distributed
from anytouch.probe.config import ProbeConfig
from anytouch.probe.runner import ProbeRunner

ROOT = Path(__file__).resolve().parent.parent


def run(config, overrides, output_dir):
    cfg = load_config(ProbeConfig, [config], overrides + [f"run.output_dir={output_dir}"])
    env = init_distributed(cfg.run.device)
    ProbeRunner(cfg, env).run()
    return json.loads((Path(output_dir) / "results.json").read_text())["timings"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=None, help="random-init architecture (default: anytouch-l14 on GPU, else tiny)")
    ap.add_argument("--checkpoint", default=None, help="a real checkpoint instead of a random-init preset")
    ap.add_argument("--task", default="of2", help="probe task (default of2: no augmentation)")
    ap.add_argument("--data-root", default="synthetic")
    ap.add_argument("--samples", type=int, default=256, help="synthetic samples per split")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64, help="effective training batch")
    ap.add_argument("--eval-batch-size", type=int, default=256)
    ap.add_argument("--num-workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--output-dir", default="log/bench_probe")
    args = ap.parse_args()
    preset = args.preset or ("anytouch-l14" if torch.cuda.is_available() else "tiny")
    checkpoint = args.checkpoint or f"random:{preset}"
    config = ROOT / "configs" / f"probe_{'tag' if args.task.startswith('tag_') else args.task}.yaml"  # docs/original/probes.md#protocol recipe
    with tempfile.TemporaryDirectory() as tmp:
        common = [
            f"probe.tasks=[{args.task}]", f"probe.checkpoint={checkpoint}", f"probe.epochs={args.epochs}",
            f"probe.batch_size={args.batch_size}", f"probe.eval_batch_size={args.eval_batch_size}",
            "probe.val_fraction=0", f"probe.cache_dir={tmp}/cache",
            "data.source=synthetic" if args.data_root == "synthetic" else f"data.root={args.data_root}",
            f"data.num_workers={args.num_workers}", f"data.synthetic.num_samples={args.samples}",
        ]
        t0 = time.perf_counter()
        cold = run(config, common + ["probe.protocol=both"], f"{tmp}/cold")[args.task]
        warm = run(config, common + ["probe.protocol=cached"], f"{tmp}/warm")[args.task]["cached"]
        total = time.perf_counter() - t0
    off, cac = cold["official"], cold["cached"]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    ips = cac["extracted_images"] / cac["extract_s"]
    table = "\n".join([
        "| encoder | device | task | samples/split | epochs | official (s) | cached, cold (s) | cached, warm (s) "
        "| speed-up (cold) | extraction (img/s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {checkpoint} | {device} | {args.task} | {args.samples if args.data_root == 'synthetic' else '-'} | "
        f"{args.epochs} | {off['wall_s']:.1f} | {cac['wall_s']:.1f} (extract {cac['extract_s']:.1f} + fit "
        f"{cac['fit_s']:.1f}) | {warm['wall_s']:.1f} | {off['wall_s'] / cac['wall_s']:.1f}x | {ips:.0f} |",
    ])
    print("\n" + table + f"\n\n(benchmark wall time {total:.0f} s; load average {os.getloadavg()[0]:.1f})")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_probe.md").write_text(table + "\n")
    (out / "bench_probe.json").write_text(json.dumps({"official": off, "cached_cold": cac, "cached_warm": warm,
                                                      "args": vars(args), "device": device}, indent=1))


if __name__ == "__main__":
    main()
