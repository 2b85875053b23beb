"""Benchmark of the benchmark: cached features vs encoding every batch ("official", as the upstream probes do).

Runs the same matrix twice on the synthetic task twins, once with the feature cache (a fresh cache folder, so the
cached run pays for its one encoding pass) and once live, then prints each encoder's wall time in both modes, the
speed ratio, and the largest difference between the two modes' test metrics (0 up to float rounding: the heads see
the same features, batches and seeds). The cached run's table is left in ``<out>/cached/results.md``.

Without ``--encoders`` it writes four tiny random encoders (AnyTouch 1 ``tiny``, a timm ViT, a Sparsh-layout ViT,
an AnyTouch 2 ViT with 4 frames at stride 2) into ``<out>/encoders``; with real encoder files it measures those
(pass ``--device cuda`` on a GPU).

    python scripts/bench_bench.py --out bench_speed [--tasks force slip] [--num-samples 64] [--epochs 10]
    python scripts/bench_bench.py --out bench_synthetic --cached-only --seeds 0 1 2 --budgets 1 0.1   # the table
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import yaml

from anytouch.bench.protocol import ProtocolConfig
from anytouch.bench.runner import BenchConfig, default_tasks, run_benchmark
from anytouch.bench.sparsh import SparshViT, to_sparsh_state_dict
from anytouch.checkpoint import ours
from anytouch.checkpoint.anytouch2 import export_safetensors
from anytouch.models import TouchMAE
from anytouch.models.anytouch2 import AnyTouch2Encoder
from anytouch.models.config import AnyTouch2Config, TowerCfg, get_arch


def tiny_encoders(folder: Path) -> list:
    """Four tiny random encoders in their families' own file layouts, with their YAML files."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ours.save_checkpoint(folder / "at1.pt", TouchMAE(get_arch("tiny")).eval())
    vit = SparshViT(width=64, depth=2, heads=2, mlp_width=128, patch_size=8, in_chans=6, registers=1,
                    image_size=(32, 24))
    torch.save({"model": to_sparsh_state_dict(vit)}, folder / "sparsh.ckpt")
    at2 = AnyTouch2Config(name="tiny", projection_dim=32, num_frames=4,
                          touch=TowerCfg(width=64, layers=2, heads=2, mlp_width=128, patch_size=8, image_size=32))
    export_safetensors(AnyTouch2Encoder(at2).eval(), folder / "at2.safetensors")
    specs = {"anytouch1-tiny": {"family": "anytouch1", "checkpoint": "at1.pt"},
             "vit-tiny": {"family": "timm", "options": {"model": "vit_tiny_patch16_224",
                                                         "model_kwargs": {"img_size": 32, "depth": 2}}},
             "sparsh-tiny": {"family": "sparsh", "checkpoint": "sparsh.ckpt", "options": {"image_size": [32, 24]}},
             "anytouch2-tiny": {"family": "anytouch2", "checkpoint": "at2.safetensors"}}
    paths = []
    for name, body in specs.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body))
        paths.append(str(folder / f"{name}.yaml"))
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--encoders", nargs="+", default=None)
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--num-samples", type=int, default=32, help="synthetic training samples per task")
    p.add_argument("--image-size", type=int, default=32, help="synthetic frame size")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--budgets", nargs="+", type=float, default=[1.0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--cached-only", action="store_true", help="only the cached run: the table and per-encoder times")
    args = p.parse_args()
    out = Path(args.out)
    encoders = args.encoders or tiny_encoders(out / "encoders")
    catalogue, _ = default_tasks()
    base = dict(encoders=encoders, tasks=args.tasks or list(catalogue), synthetic=True, budgets=tuple(args.budgets),
                seeds=tuple(args.seeds), protocol=ProtocolConfig(epochs=args.epochs, batch_size=16),
                device=args.device, data_options={"num_samples": args.num_samples, "image_size": args.image_size})
    runs = {}
    for mode in ("cached",) if args.cached_only else ("cached", "live"):
        shutil.rmtree(out / mode, ignore_errors=True)  # timings only mean something for a run from scratch
        t0 = time.perf_counter()
        runs[mode] = run_benchmark(BenchConfig(out=str(out / mode), cache=mode == "cached", **base))
        print(f"{mode}: {time.perf_counter() - t0:.1f} s")
    if args.cached_only:
        for name, t in runs["cached"]["timing"].items():
            print(f"{name}: {t['wall_s']:.1f} s")
        print((out / "cached" / "results.md").read_text())
        return
    print(f"\n{'encoder':<20} {'cached s':>9} {'live s':>9} {'ratio':>7}")
    total = {"cached": 0.0, "live": 0.0}
    for name in runs["cached"]["timing"]:
        c, lv = (runs[m]["timing"][name]["wall_s"] for m in ("cached", "live"))
        total["cached"], total["live"] = total["cached"] + c, total["live"] + lv
        print(f"{name:<20} {c:>9.1f} {lv:>9.1f} {lv / c:>6.1f}x")
    print(f"{'all':<20} {total['cached']:>9.1f} {total['live']:>9.1f} {total['live'] / total['cached']:>6.1f}x")
    key = lambda c: (c["encoder"], c["task"], c["head"], c["budget"], c["seed"])  # noqa: E731
    live = {key(c): c for c in runs["live"]["cells"]}
    diff = max(abs(v - live[key(c)]["test"][m]) for c in runs["cached"]["cells"] for m, v in c["test"].items())
    print(f"largest |cached - live| test metric difference: {diff:.2e}")
    (out / "speed.json").write_text(json.dumps({"wall_s": total, "ratio": total["live"] / total["cached"],
                                                "max_metric_diff": diff}, indent=1))
    print(f"\nsynthetic table (cached run): {out / 'cached' / 'results.md'}")


if __name__ == "__main__":
    main()
