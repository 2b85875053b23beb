"""Data-loading speed: decoded-and-augmented samples/s of one worker (single process, no DataLoader).

Writes a TAG-layout tree of real-size (480x640 by default) GelSight-like JPEGs, then times, in the same run, on the
same frames:

* ours: the real TAG loader (``build_dataset("tag", clip=image|video)``): torchvision uint8 decode, frames stacked,
  one batched transforms.v2 call per sample (touch-train of spec 4.1: resize 224, flips, colour jitter, normalise);
* plain: PIL open + convert RGB, ``ToTensor`` per frame, the v1 touch-train transforms applied per frame (the
  usual per-frame pipeline; the original applied them once to the stack for clips, with float tensors as well).

Images are one frame, clips the 4-frame video samples (t-3..t). Threads are limited to 1 (``--threads``), like a
DataLoader worker. Prints a table.

    python scripts/bench_data.py [--height 480 --width 640 --frames 48 --seconds 3 --threads 1]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import cv2
import numpy as np
import torch
import torchvision.transforms as T1
from PIL import Image

from anytouch.data import build_dataset
from anytouch.data.synthetic_render import LOOKS, TAG_MATERIALS, random_scene, render_touch
from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD


def write_tree(root: str, frames: int, height: int, width: int) -> None:
    """``TAG/dataset/<folder>/gelsight_frame/%010d.jpg`` at ``height`` x ``width`` and ``TAG/label.txt``."""
    rng = np.random.default_rng(0)
    lines = []
    for k in range(2):
        folder = f"2019010{k}_000000"
        out = os.path.join(root, "TAG", "dataset", folder, "gelsight_frame")
        os.makedirs(out, exist_ok=True)
        clip = render_touch(random_scene(rng, TAG_MATERIALS[3 + k]), LOOKS[0], 96, rng,
                            list(np.linspace(0.2, 1.0, frames // 2)))
        for t, f in enumerate(clip):
            img = cv2.resize(np.ascontiguousarray(f.transpose(1, 2, 0)), (width, height), interpolation=cv2.INTER_CUBIC)
            img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)  # sensor noise: real JPEG sizes
            Image.fromarray(img).save(os.path.join(out, f"{t:010d}.jpg"), quality=90)
            lines.append(f"{folder}/{t:010d}.jpg,3")
    with open(os.path.join(root, "TAG", "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plain_transform(size: int):
    return T1.Compose([T1.Resize((size, size), antialias=True), T1.RandomHorizontalFlip(), T1.RandomVerticalFlip(),
                       T1.ColorJitter(0.4, 0.4, 0.5, 0.3), T1.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def plain_sample(paths, tf):
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(tf(T1.functional.to_tensor(im.convert("RGB"))))
    return frames[0] if len(frames) == 1 else torch.stack(frames)


def rates(fns, n: int, seconds: float, rounds: int = 6):
    """Calls/s of each ``fn(i)`` in ``fns``, timed in alternating windows (``rounds`` per function, ``seconds`` in
    all per function) so that a change in machine load hits every pipeline alike; 2 warm-up calls each."""
    for fn in fns:
        fn(0), fn(1 % n)
    done, spent = [0] * len(fns), [0.0] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / rounds:
                fn(done[k] % n)
                done[k] += 1
            spent[k] += time.perf_counter() - start
    return [d / t for d, t in zip(done, spent)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--frames", type=int, default=48, help="frames written (two recordings)")
    ap.add_argument("--size", type=int, default=224, help="output side")
    ap.add_argument("--seconds", type=float, default=6.0, help="timing per pipeline and sample kind")
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenCV threads (a DataLoader worker uses 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    warnings.filterwarnings("ignore", message=".*TorchVision.*deprecated")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        write_tree(root, a.frames, a.height, a.width)
        kb = np.mean([os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs])
        tf = plain_transform(a.size)
        for clip in ("image", "video"):
            ds = build_dataset("tag", root=root, clip=clip, image_size=a.size, train=True)
            paths = [ds.entry(i)["frames"] for i in range(len(ds))]
            ours, plain = rates([lambda i: ds[i], lambda i: plain_sample(paths[i], tf)], len(ds), a.seconds)
            assert ds[0]["touch"].shape == plain_sample(paths[0], tf).shape
            rows.append((clip, len(paths[0]), ours, plain))
    load = os.getloadavg()[0]
    print(f"decoded + augmented samples/s, one process, {a.threads} thread(s), load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; {a.height}x{a.width} JPEG "
          f"(mean {kb / 1024:.0f} KiB) -> {a.size}x{a.size}, touch-train transforms")
    print(f"{'sample':<8}{'frames':>7}{'ours /s':>10}{'plain /s':>10}{'ours frames/s':>15}{'speed-up':>10}")
    for clip, n, ours, plain in rows:
        print(f"{clip:<8}{n:>7}{ours:>10.1f}{plain:>10.1f}{ours * n:>15.1f}{ours / plain:>9.2f}x")


if __name__ == "__main__":
    main()
