"""``anytouch stream``: a live sensor (or a video file) -> features each step -> a bench panel, shown or written."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from .args import CLIError, add_model_args, check_output_file, check_sensor_slot, load_from_args, sensor_arg

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``stream`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("stream", help="live sensor / video -> contact, background difference, nearest reference",
                       description="Read a UVC tactile sensor (DIGIT, GelSight Mini: --source 0 or /dev/video2) or a "
                                   "video file, embed the encoder's own window of the newest frames each step "
                                   "(AnyTouch 1: 3 consecutive frames; AnyTouch 2: its 4 or 2 frames at its frame "
                                   "stride, with the no-contact background subtracted), and show or write a panel: "
                                   "the frame, the frame minus a no-contact background, the contact score (cosine "
                                   "distance to the background's embedding) and the nearest labelled reference. "
                                   "A slow model drops frames instead of lagging; the summary counts them.")
    p.add_argument("--source", required=True, help="camera index (0), /dev/videoN, or a video file")
    add_model_args(p)
    p.add_argument("--sensor", "-s", type=sensor_arg, default=-1,
                   help="sensor name (digit, gelsight_mini, ...) or id; default universal (-1)")
    p.add_argument("--background", default=None, help="a no-contact image of the sensor (default: the mean of the "
                                                       "first --background-frames frames, taken without contact)")
    p.add_argument("--background-frames", type=int, default=10, help="frames averaged for the background (default 10)")
    p.add_argument("--references", default=None, help="folder/<label>/*.png: labelled example frames")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="cosine distance to the background above which a step counts as contact (default 0.1)")
    p.add_argument("--out", default=None, help="write the panels as a video (.mp4 / .avi)")
    p.add_argument("--out-dir", default=None, help="write each panel as PNG, steps.jsonl and summary.json here")
    p.add_argument("--show", choices=("auto", "yes", "no"), default="auto",
                   help="show the panel in a window (auto: when a display exists and no output is written)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--source-fps", type=float, default=None, help="pace a video file at this rate (default: its own)")
    p.add_argument("--subtract-background", action=argparse.BooleanOptionalAction, default=None,
                   help="subtract the background in the model input too (default: yes for AnyTouch 2, which is "
                        "trained with it; no for AnyTouch 1, trained on plain frames)")
    p.set_defaults(func=run)


def _has_display() -> bool:
    return sys.platform != "linux" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args) -> int:
    """Stream, write / show each panel, print the summary."""
    import cv2  # here, not at the top: keeps anytouch --help fast

    from ..policy import TactileEncoder  # here: imports torch
    from ..stream import run_stream, write_jsonl

    if args.out:
        check_output_file(args.out, (".mp4", ".avi"), "--out")
    if args.background_frames < 1:
        raise CLIError(f"--background-frames {args.background_frames}; expected at least 1")
    show = args.show == "yes" or (args.show == "auto" and _has_display() and not (args.out or args.out_dir))
    if not (show or args.out or args.out_dir):
        print("anytouch stream: no display and no --out / --out-dir: only the summary will be printed", file=sys.stderr)
    enc = load_from_args(args, "encoder")
    check_sensor_slot(args.checkpoint, args.sensor, enc.num_sensors, family=enc.family)
    touch = TactileEncoder(enc, sensor=args.sensor)
    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    writer = None

    def on_step(record, panel) -> None:
        nonlocal writer, show
        bgr = cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)
        if args.out:
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*("mp4v" if args.out.lower().endswith(".mp4") else "MJPG"))
                writer = cv2.VideoWriter(args.out, fourcc, args.source_fps or 15.0, (bgr.shape[1], bgr.shape[0]))
            writer.write(bgr)
        if out_dir is not None:
            cv2.imwrite(str(out_dir / f"step_{record['step']:05d}.png"), bgr)
        if show:
            try:
                cv2.imshow("anytouch stream", bgr)
                cv2.waitKey(1)
            except cv2.error as e:  # a headless OpenCV build has no windows
                show = False
                print(f"anytouch stream: cannot show the panel ({str(e).strip().splitlines()[-1]}); "
                      "use --out / --out-dir", file=sys.stderr)

    try:
        records, summary = run_stream(touch, args.source, background=args.background,
                                      background_frames=args.background_frames, references=args.references,
                                      threshold=args.threshold, max_steps=args.max_steps, source_fps=args.source_fps,
                                      subtract_background=args.subtract_background, on_step=on_step)
    finally:
        if writer is not None:
            writer.release()
    if out_dir is not None:
        write_jsonl(records, out_dir / "steps.jsonl")
        (out_dir / "summary.json").write_text(json.dumps(asdict(summary), indent=1) + "\n")
    print(summary.line())
    return 0
