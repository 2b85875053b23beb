"""``anytouch embed``: images / videos / clip folders -> a features file and its row names."""
from __future__ import annotations

import sys
from pathlib import Path

from .args import CLIError, add_model_args, check_output_file, check_sensor_slot, load_from_args, sensor_arg

__all__ = ["add_parser"]

OUTPUT_TYPES = (".npy", ".safetensors")


def add_parser(sub) -> None:
    """Add ``embed`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("embed", help="images / videos / clip folders -> features (.npy or .safetensors)",
                       description="Embed tactile files. Images give one row each; videos and clip folders give one "
                                   "row per 3-frame window (--video-mode clips, named path#t) or one per file "
                                   "(--video-mode mean). Folders are searched recursively; files of other types in "
                                   "them are skipped and counted on stderr.")
    p.add_argument("inputs", nargs="*", help="image files (png/jpg/gif/...), videos (mp4/mov/avi/...) or folders")
    p.add_argument("--list", help="a text file with one input path per line (# comments allowed)")
    p.add_argument("--output", "-o", required=True,
                   help="features file: .npy or .safetensors; row names go next to it (feats.npy -> feats.names.txt, "
                        "feats.safetensors -> feats.safetensors.names.txt)")
    add_model_args(p)
    p.add_argument("--sensor", "-s", type=sensor_arg, default=-1,
                   help="sensor name (gelsight, digit, gelslim, gelsight_mini, duragel, universal) or id; "
                        "default universal (-1); slots 5-8 only once 'anytouch adapt' trained them")
    p.add_argument("--pooling", choices=("cls", "global"), default="cls", help="feature pooling (default cls)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--video-mode", choices=("clips", "mean"), default="clips",
                   help="videos / clip folders: one row per 3-frame window (clips) or the mean per file (mean)")
    p.add_argument("--stride", type=int, default=1, help="frames between consecutive windows (default 1)")
    p.add_argument("--clip-folders", action="store_true",
                   help="treat a folder of frames as one clip (frames in natural name order) instead of images")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    p.add_argument("--bf16", action="store_true",
                   help="run the encoder under bfloat16 autocast, on a GPU and on a CPU alike (on most CPUs slower "
                        "than fp32; the precision is recorded in the output's metadata)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Embed the inputs and write the features file and its names file."""
    import torch  # here, not at the top: keeps anytouch --help fast

    from ..embed import embed_paths, names_file, save_features, scan_inputs  # here: imports torch

    inputs = list(args.inputs)
    if args.list:
        lines = Path(args.list).read_text().splitlines()
        inputs += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not inputs:
        raise CLIError("no inputs: give image/video files or folders, or --list FILE")
    # before hours of embedding, not after
    check_output_file(args.output, OUTPUT_TYPES, "--output")
    check_output_file(str(names_file(args.output)), (".txt",), "the names file of --output")
    found = scan_inputs(inputs, args.clip_folders)
    if found.skipped:
        shown = ", ".join(map(str, found.skipped[:3])) + (", ..." if len(found.skipped) > 3 else "")
        print(f"anytouch embed: skipped {len(found.skipped)} file(s) of other types in the input folders: {shown}",
              file=sys.stderr)
    enc = load_from_args(args, "encoder")
    check_sensor_slot(args.checkpoint, args.sensor, enc.num_sensors)
    dtype = torch.bfloat16 if args.bf16 else None
    feats, names = embed_paths(enc, inputs, sensor=args.sensor, pooling=args.pooling,
                               batch_size=args.batch_size, video_mode=args.video_mode, stride=args.stride,
                               clip_folders=args.clip_folders, normalize=args.normalize, dtype=dtype)
    meta = {"checkpoint": str(args.checkpoint), "sensor": str(args.sensor), "pooling": args.pooling,
            "video_mode": args.video_mode, "normalized": str(args.normalize),
            "precision": f"bf16 autocast on {next(enc.parameters()).device.type}" if args.bf16 else "fp32"}
    files = save_features(args.output, feats, names, meta)
    print(f"embedded {len(names)} rows -> {files[0]} {tuple(feats.shape)}, names -> {files[1]}")
    return 0
