"""The ``anytouch`` command (also ``python -m anytouch``): thin wrappers over the library.

Every subcommand imports its machinery only when run, so ``anytouch --help`` is fast. ``train``, ``prepare``,
``verify`` and ``eval`` hand their arguments unchanged to the entry points of those packages; for the config-driven
ones (``train``, ``eval``) ``--help`` is answered here, with every config key and its default.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from typing import List, Optional, Sequence

__all__ = ["main", "build_parser"]

# subcommand -> (module with main(argv), one-line help); "train" / "eval" pick their module by the first argument
_FORWARD = {
    "train": ("", "train a stage: anytouch train {stage1,stage2} --config FILE key=value ..."),
    "prepare": ("anytouch.data.prepare", "build a dataset's index / split / text files (datasets/<name>/README.md)"),
    "verify": ("anytouch.data.verify", "check a prepared dataset: samples found, missing and unreadable files"),
    "eval": ("anytouch.probe.runner", "linear probes (anytouch eval --config configs/probe_<task>.yaml ...), "
                                      "anytouch eval zeroshot ..., anytouch eval retrieval ..."),
}
_SUB = {"train": {"stage1": "anytouch.train.stage1", "stage2": "anytouch.train.stage2"},
        "eval": {"zeroshot": "anytouch.probe.zeroshot", "retrieval": "anytouch.probe.retrieval"}}
# entry points configured by ``--config FILE key.sub=value`` (anytouch.config), with their schema
_SCHEMAS = {"anytouch.train.stage1": "Stage1Config", "anytouch.train.stage2": "Stage2Config",
            "anytouch.probe.runner": "ProbeConfig", "anytouch.probe.zeroshot": "ZeroShotConfig",
            "anytouch.probe.retrieval": "RetrievalConfig"}


class CLIError(Exception):
    """A user error: printed as ``anytouch <cmd>: error: ...`` with exit status 2, no traceback."""


def _forward(cmd: str, argv: List[str]) -> int:
    subs = _SUB.get(cmd, {})
    module, prog = _FORWARD[cmd][0], f"anytouch {cmd}"
    if argv and argv[0] in subs:
        module, prog, argv = subs[argv[0]], f"{prog} {argv[0]}", argv[1:]
    elif not module:
        if argv and argv[0] in ("-h", "--help"):
            print(f"usage: anytouch {cmd} {{{','.join(subs)}}} [--config FILE]... [key.sub=value]...\n\n"
                  f"{_FORWARD[cmd][1]}; 'anytouch {cmd} <stage> --help' lists the config keys")
            return 0
        raise CLIError(f"expected one of {', '.join(subs)} after 'anytouch {cmd}', got {argv[:1] or 'nothing'}")
    if module in _SCHEMAS and any(a in ("-h", "--help") for a in argv):
        print(_config_help(module, prog))
        return 0
    entry = importlib.import_module(module).main
    if "prog" in inspect.signature(entry).parameters:  # usage and errors then say "anytouch <cmd>"
        entry(argv, prog=prog)
    else:
        entry(argv)
    return 0


def _config_help(module: str, prog: str) -> str:
    """Usage, the entry point's docstring and every config key with its default (the schema's dataclasses)."""
    from .config import config_help

    mod = importlib.import_module(module)
    return config_help(getattr(mod, _SCHEMAS[module]), mod.__doc__ or "", prog)


# -- helpers ------------------------------------------------------------------------------------------------
def _device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def load_from_args(args, what: str):
    """Load --checkpoint (+ --config) as an encoder or a model, on --device."""
    from pathlib import Path

    from . import api

    if not Path(args.checkpoint).exists():
        raise CLIError(f"--checkpoint {args.checkpoint}: no such file or folder")
    fn = api.load_encoder if what == "encoder" else api.load_model
    return fn(args.checkpoint, config=args.config).to(_device(args.device))


def add_model_args(p: argparse.ArgumentParser, device: bool = True) -> None:
    p.add_argument("--checkpoint", "-c", required=True,
                   help="our .pth/.safetensors, an original AnyTouch stage-1/2 file, or a CLIP folder/weights file")
    p.add_argument("--config", default=None,
                   help="for original / CLIP files: the CLIP config.json (or its folder) or a preset (tiny, small, "
                        "anytouch-l14); default: inferred from the tensors")
    if device:
        p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")


def sensor_arg(value: str):
    from .sensors import sensor_id

    try:
        return sensor_id(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_suffix(path: str, allowed: Sequence[str], what: str) -> None:
    """A CLIError unless ``path`` ends in one of ``allowed`` (a file type is chosen by its name downstream)."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in allowed:
        raise CLIError(f"{what} {path}: extension {suffix or '(none)'!r}; expected {' or '.join(allowed)}")


# -- subcommands ----------------------------------------------------------------------------------------------
def _cmd_embed(args) -> int:
    from pathlib import Path

    import torch

    from .embed import embed_paths, save_features

    inputs = list(args.inputs)
    if args.list:
        lines = Path(args.list).read_text().splitlines()
        inputs += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not inputs:
        raise CLIError("no inputs: give image/video files or folders, or --list FILE")
    _check_suffix(args.output, (".npy", ".safetensors"), "--output")  # before hours of embedding, not after
    enc = load_from_args(args, "encoder")
    dtype = torch.bfloat16 if args.bf16 else None
    feats, names = embed_paths(enc, inputs, sensor=args.sensor, pooling=args.pooling, batch_size=args.batch_size,
                               video_mode=args.video_mode, stride=args.stride, clip_folders=args.clip_folders,
                               normalize=args.normalize, dtype=dtype)
    meta = {"checkpoint": str(args.checkpoint), "sensor": str(args.sensor), "pooling": args.pooling,
            "video_mode": args.video_mode, "normalized": str(args.normalize)}
    files = save_features(args.output, feats, names, meta)
    print(f"embedded {len(names)} rows -> {files[0]} {tuple(feats.shape)}, names -> {files[1]}")
    return 0


def _cmd_convert(args) -> int:
    from pathlib import Path

    from .api import load_model
    from .checkpoint import atomic_save, export_safetensors, make_checkpoint
    from .checkpoint.original import to_original_stage1, to_original_stage2

    to = args.to or ("safetensors" if args.dst.endswith(".safetensors") else "ours")
    _check_suffix(args.dst, (".safetensors",) if to == "safetensors" else (".pth", ".pt", ".bin"),
                  f"the destination of --to {to}")
    if not Path(args.src).exists():
        raise CLIError(f"{args.src}: no such checkpoint file or folder")
    model = load_model(args.src, config=args.config, merge_lora=to != "original")
    if to == "original":
        if model.has_towers:
            sd = to_original_stage2(model.state_dict(), lora_rank=model.arch.lora_rank)
        else:
            sd = to_original_stage1(model.touch.state_dict())
        out = atomic_save({"model": sd}, args.dst)  # the original container: weights under "model"
    elif to == "safetensors":
        out = export_safetensors(make_checkpoint(model), args.dst)
    else:
        out = atomic_save(make_checkpoint(model, {"converted_from": str(args.src)}), args.dst)
    kind = "stage-2" if model.has_towers else "stage-1"
    print(f"{args.src} -> {out} ({to}, {kind}, arch {model.arch.name})")
    return 0


def _cmd_export(args) -> int:
    from .export import export_encoder

    enc = load_from_args(args, "encoder")
    checks = export_encoder(enc, args.output, formats=args.format, input=args.input, pooling=args.pooling,
                            opset=args.opset)
    for c in checks.values():
        diff = "not compared" if c.max_abs_diff is None else f"max abs diff {c.max_abs_diff:.3g}"
        print(f"{c.format:<12} {c.path}  {diff} vs PyTorch (checked with {c.checked_with})")
    bad = [c for c in checks.values() if c.max_abs_diff is not None and c.max_abs_diff > args.tolerance]
    if bad:
        raise CLIError(f"{', '.join(c.format for c in bad)} output differs from PyTorch by more than "
                       f"--tolerance {args.tolerance:g}")
    return 0


def _cmd_adapt(args) -> int:
    import torch

    from .adapt import adapt_sensor_slot
    from .checkpoint import save_checkpoint
    from .embed import find_inputs, iter_units

    _check_suffix(args.output, (".pth", ".pt"), "--output (a checkpoint)")
    model = load_from_args(args, "model")
    size = model.encoder.image_size
    units = [u for u in find_inputs(args.frames) if u[0] == "image"]
    if not units:
        raise CLIError(f"no image frames found under {', '.join(args.frames)}")
    frames = torch.stack([x for *_, x in iter_units(units, size)])
    print(f"adapting on {len(frames)} frames")
    res = adapt_sensor_slot(model, frames, slot=args.slot, init=args.init, steps=args.steps, lr=args.lr,
                            batch_size=args.batch_size, seed=args.seed, log=print)
    config = {"adapt": {"slot": res.slot, "init": res.init, "steps": res.steps, "lr": args.lr, "frames": len(frames),
                        "source_checkpoint": str(args.checkpoint), "mae_loss_before": res.eval_before,
                        "mae_loss_after": res.eval_after}}
    save_checkpoint(args.output, model.cpu(), config)
    print(f"MAE loss on the frames: {res.eval_before:.4f} -> {res.eval_after:.4f}; slot {res.slot} saved to "
          f"{args.output}\nuse it with: anytouch embed ... --checkpoint {args.output} --sensor {res.slot}")
    return 0


def _cmd_quickstart(args) -> int:
    from .quickstart import run_quickstart

    run_quickstart(out=args.out, preset=args.preset, scale=args.scale, device=args.device)
    return 0


# -- parser ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    ap = argparse.ArgumentParser(prog="anytouch", description="AnyTouch (ICLR 2025) tactile representations: "
                                 "embed, train, evaluate, convert, export, picture.")
    ap.add_argument("--version", action="version", version=f"anytouch {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in _FORWARD.items():
        sub.add_parser(name, help=help_, add_help=False)

    p = sub.add_parser("embed", help="images / videos / clip folders -> features (.npy or .safetensors)",
                       description="Embed tactile files. Images give one row each; videos and clip folders give one "
                                   "row per 3-frame window (--video-mode clips, named path#t) or one per file "
                                   "(--video-mode mean). Folders are searched recursively.")
    p.add_argument("inputs", nargs="*", help="image files (png/jpg/...), videos (mp4/mov/avi/...) or folders")
    p.add_argument("--list", help="a text file with one input path per line (# comments allowed)")
    p.add_argument("--output", "-o", required=True, help="features file: .npy or .safetensors (+ <stem>.names.txt)")
    add_model_args(p)
    p.add_argument("--sensor", "-s", type=sensor_arg, default=-1,
                   help="sensor name (gelsight, digit, gelslim, gelsight_mini, duragel, universal) or id; "
                        "default universal (-1)")
    p.add_argument("--pooling", choices=("cls", "global"), default="cls", help="feature pooling (default cls)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--video-mode", choices=("clips", "mean"), default="clips",
                   help="videos / clip folders: one row per 3-frame window (clips) or the mean per file (mean)")
    p.add_argument("--stride", type=int, default=1, help="frames between consecutive windows (default 1)")
    p.add_argument("--clip-folders", action="store_true",
                   help="treat a folder of frames as one clip (frames in natural name order) instead of images")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--bf16", action="store_true", help="run the encoder under bfloat16 autocast (GPU)")
    p.set_defaults(fn=_cmd_embed)

    p = sub.add_parser("convert", help="convert checkpoints: any supported format -> ours / original / safetensors",
                       description="Read any checkpoint anytouch.load_model reads (ours, the original AnyTouch "
                                   "stage-1/2 files, CLIP) and write it as ours (.pth), safetensors weights (no "
                                   "optimizer state) or the original AnyTouch layout.")
    p.add_argument("src", help="input checkpoint file or folder")
    p.add_argument("dst", help="output file")
    p.add_argument("--to", choices=("ours", "safetensors", "original"), default=None,
                   help="output format (default: safetensors for a .safetensors name, else ours)")
    p.add_argument("--config", default=None, help="CLIP config.json / folder / preset for original and CLIP inputs")
    p.set_defaults(fn=_cmd_convert)

    p = sub.add_parser("export", help="touch encoder -> ONNX and TorchScript, checked against PyTorch",
                       description="Export the touch encoder (inputs: touch (B,3,H,W) or clips (B,3,3,H,W), sensor "
                                   "ids (B,) int64; output: features (B,P)); dynamic batch. Each file is run on a "
                                   "fresh batch and compared with PyTorch (ONNX with onnxruntime when installed).")
    add_model_args(p, device=False)
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--format", nargs="+", choices=("onnx", "torchscript"), default=["onnx", "torchscript"])
    p.add_argument("--input", choices=("image", "clip"), default="image", help="exported input kind (default image)")
    p.add_argument("--pooling", choices=("cls", "global"), default="cls")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs diff accepted (default 1e-4)")
    p.set_defaults(fn=_cmd_export, device="cpu")

    p = sub.add_parser("adapt", help="new sensor: train a free sensor slot on its frames, encoder frozen",
                       description="Fine-tune one unused sensor slot (default: the first free, 5) on unlabelled "
                                   "frames of a new sensor with the MAE loss; everything else stays frozen. The "
                                   "alternative needing no training: --sensor universal.")
    p.add_argument("frames", nargs="+", help="image files or folders of the new sensor's frames")
    add_model_args(p)
    p.add_argument("--output", "-o", required=True, help="adapted checkpoint (.pth, our format)")
    p.add_argument("--slot", type=int, default=None, help="slot to train (default: first free, 5..8)")
    p.add_argument("--init", type=sensor_arg, default=-1, help="slot start value: a sensor to copy (default universal)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_adapt)

    from .viz.cli import add_parser as add_viz

    add_viz(sub)

    p = sub.add_parser("quickstart", help="the whole pipeline on built-in synthetic data, on CPU, in minutes",
                       description="Stage 1 -> stage 2 -> the four linear probes on the built-in synthetic data, "
                                   "then pictures (MAE grid, t-SNE, training curves); prints a results table.")
    p.add_argument("--out", default=None, help="output folder (default: runs/quickstart-<timestamp>)")
    p.add_argument("--preset", choices=("tiny", "small"), default="tiny", help="architecture (default tiny)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply data sizes and epochs (tests use < 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.set_defaults(fn=_cmd_quickstart)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in _FORWARD:
            return _forward(argv[0], argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return args.fn(args)
    except (CLIError, FileNotFoundError, ValueError, ImportError) + _data_errors() + _checkpoint_errors() as e:
        # user errors (bad path, value, format, damaged or refused checkpoint, missing optional package): the
        # message names what was wrong
        if os.environ.get("ANYTOUCH_TRACEBACK"):
            raise
        print(f"anytouch {argv[0] if argv else ''}: error: {e}\n(set ANYTOUCH_TRACEBACK=1 for the traceback)",
              file=sys.stderr)
        return 2


def _data_errors() -> tuple:
    """DataError (a bad data file) when the data package was imported by the failing command."""
    mod = sys.modules.get("anytouch.data.io")
    return (mod.DataError,) if mod is not None else ()


def _checkpoint_errors() -> tuple:
    """UnsafeCheckpointError (a refused pickle) when the failing command loaded a checkpoint; a damaged checkpoint
    raises CorruptCheckpointError, a ValueError."""
    mod = sys.modules.get("anytouch.checkpoint.io")
    return (mod.UnsafeCheckpointError,) if mod is not None else ()
