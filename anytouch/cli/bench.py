"""``anytouch bench``: tactile encoders side by side on the benchmark tasks (:mod:`anytouch.bench`)."""
from __future__ import annotations

from ..bench import command

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``bench`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("bench", help="tactile encoders side by side (results.json / results.md / results.png)",
                       description=(command.__doc__ or "").strip().splitlines()[0])
    command.add_arguments(p)
    p.set_defaults(func=command.run)
