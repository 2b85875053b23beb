"""``anytouch train`` and ``anytouch eval``: the config-driven entry points (training stages, linear probes,
zero-shot, retrieval), handed the rest of the command line unchanged. ``--help`` is answered here with every config
key and its default."""
from __future__ import annotations

from typing import Callable, List, Sequence

from ..config import config_help
from .args import CLIError

__all__ = ["add_parser"]

STAGES = ("stage1", "stage2")
EVALS = ("zeroshot", "retrieval")


def add_parser(sub) -> None:
    """Add ``train`` and ``eval`` to the ``anytouch`` subparsers ``sub``; both take the rest of the line."""
    sub.add_parser("train", add_help=False,
                   help="train a stage: anytouch train {stage1,stage2} --config FILE key=value ...",
                   ).set_defaults(func=train, argv=[])
    sub.add_parser("eval", add_help=False,
                   help="linear probes (anytouch eval --config configs/probe_<task>.yaml ...), anytouch eval "
                        "zeroshot ..., anytouch eval retrieval ...").set_defaults(func=evaluate, argv=[])


def _run(entry: Callable[[List[str]], object], schema: type, doc: str, prog: str, argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(config_help(schema, doc, prog))
        return 0
    entry(list(argv))
    return 0


def train(args) -> int:
    """``anytouch train {stage1,stage2} ...`` -> :func:`anytouch.train.stage1.main` / ``stage2.main``."""
    argv = args.argv
    if not argv or argv[0] not in STAGES:
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: anytouch train {{{','.join(STAGES)}}} [--config FILE]... [key.sub=value]...\n\n"
                  "train a stage; 'anytouch train <stage> --help' lists the config keys")
            return 0
        raise CLIError(f"expected one of {', '.join(STAGES)} after 'anytouch train', got {argv[:1] or 'nothing'}")
    # here, not at the top: the training stages import torch and the models (keeps anytouch --help fast)
    if argv[0] == "stage1":
        from ..train import stage1 as entry

        schema = entry.Stage1Config
    else:
        from ..train import stage2 as entry

        schema = entry.Stage2Config
    return _run(entry.main, schema, entry.__doc__ or "", f"anytouch train {argv[0]}", argv[1:])


def evaluate(args) -> int:
    """``anytouch eval ...`` -> the linear probes; ``eval zeroshot`` / ``eval retrieval`` -> those entry points."""
    argv = args.argv
    # here, not at the top: the probes import torch and the models (keeps anytouch --help fast)
    if argv and argv[0] == "zeroshot":
        from ..probe import zeroshot as entry

        return _run(entry.main, entry.ZeroShotConfig, entry.__doc__ or "", "anytouch eval zeroshot", argv[1:])
    if argv and argv[0] == "retrieval":
        from ..probe import retrieval as entry

        return _run(entry.main, entry.RetrievalConfig, entry.__doc__ or "", "anytouch eval retrieval", argv[1:])
    from ..probe import runner
    from ..probe.config import ProbeConfig

    return _run(runner.main, ProbeConfig, runner.__doc__ or "", "anytouch eval", argv)
