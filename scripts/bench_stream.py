"""Frames per second and end-to-end latency of ``anytouch stream`` for an architecture with random weights.

    python scripts/bench_stream.py --arch tiny --frames 300           # a 60 fps DIGIT, the tiny test model
    python scripts/bench_stream.py --arch anytouch-l14 --frames 60    # the same camera, ViT-L/14

Writes a DIGIT-sized (320x240) gel-like clip with a press in the middle, streams it through a random encoder of
``--arch`` (nothing downloaded) and prints the stream summary: steps, fps, latency (capture -> finished panel) and
dropped frames. The clip is paced like a camera at ``--fps`` (default 60, a DIGIT's QVGA rate): a model slower than
that drops frames, and the reported fps is what the stream sustains.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch


def write_clip(path: Path, n: int, h: int = 240, w: int = 320) -> Path:
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    base = np.stack([120 + 60 * xx, 100 + 50 * yy, 150 - 40 * xx], -1)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    for i in range(n):
        press = 1.0 if n // 3 <= i < 2 * n // 3 else 0.0
        img = base + press * 90 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.02)[..., None]
        out.write(cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    out.release()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tiny", help="architecture preset (tiny, small, anytouch-l14)")
    ap.add_argument("--frames", type=int, default=300, help="frames in the clip (10 go to the background)")
    ap.add_argument("--fps", type=float, default=60.0, help="pace the clip like a camera at this rate (default 60)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from anytouch.models import TouchEncoder, get_arch
    from anytouch.policy import TactileEncoder
    from anytouch.stream import run_stream

    torch.manual_seed(0)
    t = time.perf_counter()
    touch = TactileEncoder(TouchEncoder(get_arch(args.arch)).eval(), sensor="digit").to(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; built {args.arch} in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.avi", args.frames)
        _, summary = run_stream(touch, str(clip), source_fps=args.fps)
    print(summary.line())


if __name__ == "__main__":
    main()
