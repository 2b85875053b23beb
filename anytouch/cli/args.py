"""Argument helpers shared by the ``anytouch`` commands: model / device / sensor options, output-file checks and
the mapping of user errors to ``anytouch <cmd>: error: ...`` lines.

This module and the command modules stay light at import time (no torch): ``anytouch --help`` builds every parser.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["CLIError", "add_model_args", "sensor_arg", "check_suffix", "check_output_file", "check_checkpoint", "device",
           "load_from_args", "check_sensor_slot", "user_errors"]


class CLIError(Exception):
    """A user error: printed as ``anytouch <cmd>: error: ...`` with exit status 2, no traceback."""


def add_model_args(p: argparse.ArgumentParser, device: bool = True) -> None:
    """``--checkpoint`` / ``--config`` (and ``--device``) for commands that load a model."""
    p.add_argument("--checkpoint", "-c", required=True,
                   help="our .pth/.safetensors, an original AnyTouch stage-1/2 file, a CLIP folder/weights file, a "
                        "hub-layout folder or a hf-hub:ORG/NAME id")
    p.add_argument("--config", default=None,
                   help="for original / CLIP files: the CLIP config.json (or its folder) or a preset (tiny, small, "
                        "anytouch-l14); default: inferred from the tensors")
    if device:
        p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")


def sensor_arg(value: str) -> int:
    """argparse type: a sensor name or integer id -> the id."""
    from ..sensors import sensor_id  # here, not at the top: anytouch.sensors imports torch (slow --help)

    try:
        return sensor_id(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_suffix(path: str, allowed: Sequence[str], what: str) -> None:
    """A CLIError unless ``path`` ends in one of ``allowed`` (a file type is chosen by its name downstream)."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in allowed:
        raise CLIError(f"{what} {path}: extension {suffix or '(none)'!r}; expected {' or '.join(allowed)}")


def check_output_file(path: str, allowed: Sequence[str], what: str) -> None:
    """Check an output file before any work: its extension, and that it can be a file (not an existing folder,
    not below an existing file)."""
    check_suffix(path, allowed, what)
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{what} {path} is an existing folder; expected a file name such as {p / ('out' + allowed[0])}")
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise CLIError(f"{what} {path}: {parent} is a file, not a folder")


def check_checkpoint(checkpoint: str, what: str = "--checkpoint") -> None:
    """A CLIError unless ``checkpoint`` exists or is a hub id (``hf-hub:...``, resolved when loaded)."""
    if not checkpoint.startswith("hf-hub:") and not Path(checkpoint).exists():
        raise CLIError(f"{what} {checkpoint}: no such file or folder")


def device(name: str):
    """``auto`` -> cuda when available, else cpu; a CLIError for CUDA on a machine without it."""
    import torch  # here, not at the top: keeps anytouch --help fast

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def load_from_args(args, what: str):
    """Load --checkpoint (+ --config) as an encoder or a model, on --device."""
    from .. import api  # here, not at the top: keeps anytouch --help fast

    check_checkpoint(args.checkpoint)
    fn = api.load_encoder if what == "encoder" else api.load_model
    return fn(args.checkpoint, config=args.config).to(device(args.device))


def check_sensor_slot(checkpoint: str, sensor: int, num_sensors: int, option: str = "--sensor",
                      family: str = "anytouch") -> None:
    """A CLIError for a sensor id naming a slot no one trained: the free slots (AnyTouch 1: 5-8; AnyTouch 2: 6-18)
    are random unless ``anytouch adapt`` trained them, which the adapted checkpoint records."""
    from ..adapt import free_slots, recorded_slots  # here, not at the top: imports torch (slow --help)

    slot = sensor % num_sensors
    if slot not in free_slots(num_sensors, family) or slot in recorded_slots(checkpoint):
        return
    raise CLIError(f"{option} {sensor}: slot {slot} of {checkpoint} was never trained (no sensor of the "
                   f"{family} family uses it and the checkpoint records no 'anytouch adapt' of it); use {option} "
                   f"universal, or train the slot first: anytouch adapt FRAMES -c {checkpoint} -o adapted.pth "
                   f"--slot {slot}")


def user_errors() -> tuple:
    """The exception types that are the user's to fix (bad path, value, format, damaged or refused checkpoint,
    missing optional package): reported as one line naming what was wrong, without a traceback.

    ``DataError`` and ``UnsafeCheckpointError`` count only when the failing command imported their modules (looked
    up in ``sys.modules`` so that this module stays light).
    """
    found = [getattr(sys.modules.get(mod), name, None) for mod, name in
             (("anytouch.data.io", "DataError"), ("anytouch.checkpoint.io", "UnsafeCheckpointError"))]
    return (CLIError, FileNotFoundError, ValueError, ImportError) + tuple(t for t in found if t is not None)
