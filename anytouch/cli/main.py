"""The ``anytouch`` parser and entry point: one subcommand per command module, each registering its handler.

Dependencies run one way: :mod:`.args` (shared options and checks) <- the command modules <- this module. Every
command imports its machinery only when run, so ``anytouch --help`` is fast.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .. import __version__
from . import adapt, bench, convert, data, embed, pack, quickstart, stream, train, viz
from .args import user_errors

__all__ = ["build_parser", "main"]

BROKEN_PIPE_STATUS = 141  # what a shell reports for a command stopped by SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    """The ``anytouch`` parser. A command that hands the rest of the line to another entry point (train, eval,
    prepare, verify) declares an ``argv`` default; :func:`main` fills it."""
    ap = argparse.ArgumentParser(prog="anytouch", description="AnyTouch (ICLR 2025) tactile representations: "
                                 "embed, train, evaluate, convert, export, picture.")
    ap.add_argument("--version", action="version", version=f"anytouch {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for module in (train, data, pack, embed, convert, adapt, viz, stream, bench, quickstart):
        module.add_parser(sub)
    return ap


def _main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if "argv" in vars(args):
        args.argv = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except user_errors() as e:  # the message names what was wrong; a traceback would only hide it
        if os.environ.get("ANYTOUCH_TRACEBACK"):
            raise
        print(f"anytouch {args.command}: error: {e}\n(set ANYTOUCH_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``anytouch`` with ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        try:
            return _main(list(sys.argv[1:] if argv is None else argv))
        finally:
            sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # the reader went away (anytouch --help | head): stop quietly, as other command-line tools do; stdout goes
        # to devnull so that the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
