"""``anytouch bench`` / ``python -m anytouch.bench``: the benchmark matrix from the command line.

``add_arguments(parser)`` fills an argparse parser (the ``anytouch`` CLI adds it as a subcommand) and ``run(args)``
runs the parsed arguments; ``main(argv)`` does both.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

__all__ = ["add_arguments", "parse_data_options", "config_from_args", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser``."""
    parser.add_argument("--encoders", nargs="+", required=True, metavar="YAML",
                        help="encoder files (configs/bench/encoders/*.yaml: family, checkpoint, options)")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="task names (default: every task)")
    parser.add_argument("--out", required=True, help="output folder (results.json, results.md, results.png, cells/)")
    parser.add_argument("--synthetic", action="store_true", help="use each task's synthetic twin instead of real data")
    parser.add_argument("--root", default=None, help="data root (default: the task modules' default)")
    parser.add_argument("--data", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra options of the task datasets (YAML values), e.g. num_samples=64 image_size=32")
    parser.add_argument("--budgets", nargs="+", type=float, default=[1.0, 0.33, 0.1, 0.01],
                        help="training-data fractions (nested subsets)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=None, help="linear and/or attentive (default: both)")
    # recipe options default to anytouch.bench.protocol.ProtocolConfig's values
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per head (default 30)")
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default 0.05)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size (default 64)")
    parser.add_argument("--num-heads", type=int, default=None,
                        help="attention heads of the attentive pooler (default 0: width // 64)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units of the task layer (default 0: linear)")
    parser.add_argument("--no-cache", action="store_true",
                        help="encode every batch of every epoch instead of caching features once per split")
    parser.add_argument("--cache-dir", default=None, help="feature cache folder (default: OUT/features)")
    parser.add_argument("--feature-dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    return parser


def parse_data_options(items: List[str]) -> Dict[str, Any]:
    """``["key=value", ...]`` -> {key: YAML-parsed value}; an item without ``=`` is a ValueError naming it."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--data {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def config_from_args(args: argparse.Namespace, task_names: List[str]):
    """A :class:`~anytouch.bench.runner.BenchConfig` from parsed arguments (``task_names``: the default tasks)."""
    import torch  # imported on use, so that building the parser (anytouch --help) stays light

    from .heads import HEADS
    from .protocol import ProtocolConfig
    from .runner import BenchConfig

    heads = tuple(args.heads or HEADS)
    bad = [h for h in heads if h not in HEADS]
    if bad:
        raise ValueError(f"--heads {bad}: expected some of {', '.join(HEADS)}")
    recipe = {k: getattr(args, k) for k in ("epochs", "lr", "weight_decay", "batch_size", "num_heads", "hidden")}
    proto = ProtocolConfig(**{k: v for k, v in recipe.items() if v is not None})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return BenchConfig(encoders=list(args.encoders), tasks=list(args.tasks or task_names), out=args.out,
                       synthetic=args.synthetic, root=args.root, budgets=tuple(args.budgets), seeds=tuple(args.seeds),
                       heads=heads, protocol=proto, cache=not args.no_cache, cache_dir=args.cache_dir,
                       data_options=parse_data_options(args.data), device=device, feature_dtype=args.feature_dtype,
                       encode_batch_size=args.encode_batch_size,
                       num_workers=args.num_workers)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments; prints the Markdown table. Returns 0."""
    from .runner import default_tasks, run_benchmark  # imported on use: the runner pulls in torch and the models

    catalogue, _ = default_tasks()
    results = run_benchmark(config_from_args(args, list(catalogue)))
    print((Path(args.out) / "results.md").read_text(), end="")
    for name, t in results["timing"].items():
        print(f"{name}: {t['wall_s']:.1f} s ({t['cells_run']} cells)")
    return 0


def main(argv: Optional[List[str]] = None, prog: str = "anytouch bench") -> int:
    parser = add_arguments(argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0]))
    return run(parser.parse_args(argv))
