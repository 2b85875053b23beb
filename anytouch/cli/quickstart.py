"""``anytouch quickstart``: the whole pipeline on the built-in synthetic data."""
from __future__ import annotations

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``quickstart`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("quickstart", help="the whole pipeline on built-in synthetic data, on CPU, in minutes",
                       description="Stage 1 -> stage 2 -> the four linear probes on the built-in synthetic data, "
                                   "then pictures (MAE grid, t-SNE, training curves); prints a results table.")
    p.add_argument("--out", default=None, help="output folder (default: runs/quickstart-<timestamp>)")
    p.add_argument("--preset", choices=("tiny", "small"), default="tiny", help="architecture (default tiny)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply data sizes and epochs (tests use < 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the quick start."""
    from ..quickstart import run_quickstart  # here, not at the top: imports torch (keeps anytouch --help fast)

    run_quickstart(out=args.out, preset=args.preset, scale=args.scale, device=args.device)
    return 0
