"""``anytouch prepare`` and ``anytouch verify``: the dataset tools, handed the rest of the command line."""
from __future__ import annotations

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``prepare`` and ``verify`` to the ``anytouch`` subparsers ``sub``; both take the rest of the line."""
    sub.add_parser("prepare", add_help=False,
                   help="build a dataset's index / split / text files (datasets/<name>/README.md)",
                   ).set_defaults(func=prepare, argv=[])
    sub.add_parser("verify", add_help=False,
                   help="check a prepared dataset: samples found, missing and unreadable files",
                   ).set_defaults(func=verify, argv=[])


def prepare(args) -> int:
    """``anytouch prepare ...`` -> :func:`anytouch.data.prepare.main` (its own options and ``--help``)."""
    from ..data.prepare import main  # here, not at the top: imports torch (keeps anytouch --help fast)

    main(args.argv, prog="anytouch prepare")
    return 0


def verify(args) -> int:
    """``anytouch verify ...`` -> :func:`anytouch.data.verify.main` (its own options and ``--help``)."""
    from ..data.verify import main  # here, not at the top: imports torch (keeps anytouch --help fast)

    main(args.argv, prog="anytouch verify")
    return 0
