"""Data-loading speed per CPU core: the old float path, the new uint8 worker path and the packed store, in one run.

Writes TAG-layout trees of GelSight-like frames -- 480x640 JPEG (Touch and Go) and 240x320 PNG (DIGIT / GelSight
Mini) -- and times, on the same frames, samples/s of one process with 1 thread (a DataLoader worker):

* old: the former worker path, rebuilt here with torchvision (uint8 decode, float resize, flips, colour jitter and
  normalisation on the CPU, float32 out);
* new: the TAG loader ``ds[i]`` as it runs now (uint8 decode + uint8 resize + the parameter draw, uint8 out; the
  augmentation happens on the device);
* packed: :class:`anytouch.data.packed.PackedDataset` ``[i]`` on a store packed from the same tree (page cache warm).

Images are one frame, clips the 4-frame video samples (t-3..t). Then: the cost of
:func:`~anytouch.data.device_aug.apply_touch_aug` per batch on ``--device``, and the CPU cores needed to feed one
H200 at 50 % MFU (989 TFLOP/s bf16 dense) with a 50:50 image/clip mix of stage-1 samples (FLOPs from
:mod:`anytouch.engine.flops`, ViT-L/14), per input and path. Collation and the copy to the device are not included.

    OMP_NUM_THREADS=1 python scripts/bench_data.py [--seconds 3 --frames 48 --device cpu]
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
import torchvision.transforms.v2 as T
from PIL import Image

from anytouch.data import build_dataset, read_image
from anytouch.data.device_aug import DEFAULT_JITTER, apply_touch_aug, draw_touch_params, load_touch_uint8
from anytouch.data.packed import PackedDataset, pack_dataset
from anytouch.data.synthetic_render import LOOKS, TAG_MATERIALS, random_scene, render_touch
from anytouch.engine.flops import mae_forward_flops
from anytouch.models import get_arch
from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD

INPUTS = (("480x640 JPEG", 480, 640, "JPEG"), ("240x320 PNG", 240, 320, "PNG"))
KINDS = ("image", "video")
PATHS = ("old", "new", "packed")
H200_BF16_TFLOPS = 989.0


def write_tree(root: str, frames: int, height: int, width: int, fmt: str = "JPEG") -> None:
    """``TAG/dataset/<folder>/gelsight_frame/%010d.jpg`` at ``height`` x ``width`` and ``TAG/label.txt``.

    ``fmt`` is the encoding (JPEG or PNG); the names stay TAG's, as the reader decodes by content, not by name."""
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
            img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)  # sensor noise: real file sizes
            Image.fromarray(img).save(os.path.join(out, f"{t:010d}.jpg"), format=fmt, quality=90)
            lines.append(f"{folder}/{t:010d}.jpg,3")
    with open(os.path.join(root, "TAG", "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def rates(fns, n: int, seconds: float, rounds: int = 6):
    """Calls per CPU-second of each ``fn(i)`` in ``fns`` (process CPU time: one thread = one core, robust to other
    load on the machine), timed in alternating windows (``rounds`` per function, ``seconds`` of CPU time in all per
    function); 2 warm-up calls each."""
    for fn in fns:
        fn(0), fn(1 % n)
    done, spent = [0] * len(fns), [0.0] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = time.process_time()
            while time.process_time() - start < seconds / rounds:
                fn(done[k] % n)
                done[k] += 1
            spent[k] += time.process_time() - start
    return [d / t for d, t in zip(done, spent)]


def former_touch_train(size: int, antialias: bool) -> T.Compose:
    """The per-sample float touch-train pipeline the loaders ran on the CPU before augmentation moved to the device."""
    return T.Compose([T.ToDtype(torch.float32, scale=True),
                      T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=antialias),
                      T.RandomHorizontalFlip(0.5), T.RandomVerticalFlip(0.5), T.ColorJitter(*DEFAULT_JITTER),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def measure_input(root: str, size: int, seconds: float) -> dict:
    """{(kind, path): samples/s} for one generated tree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = {k: build_dataset("tag", root=root, clip=k, image_size=size, train=True) for k in KINDS}
    store = os.path.join(root, "packed")
    pack_dataset(raw, store, size)
    out = {}
    for kind, ds in raw.items():
        paths = [ds.entry(i)["frames"] for i in range(len(ds))]
        packed = PackedDataset(store, kind, train=True)
        old_tf = former_touch_train(size, ds.touch_tf.antialias)
        fns = [lambda i: old_tf(torch.stack([read_image(p) for p in paths[i]]).squeeze(0)), lambda i: ds[i],
               lambda i: packed[i]]
        assert load_touch_uint8(paths[0], size).shape[1:] == ds[0]["touch"].shape[-3:] == packed[0]["touch"].shape[-3:]
        out.update({(kind, p): r for p, r in zip(PATHS, rates(fns, len(ds), seconds))})
    return out


def device_aug_ms(device: torch.device, batch: int, size: int, frames: int, reps: int = 5) -> float:
    """Milliseconds per ``apply_touch_aug`` call on a uint8 batch already on ``device`` (training parameters)."""
    shape = (batch, size, size) if frames == 1 else (batch, frames, 3, size, size)
    x = torch.randint(0, 256, (batch, 3, size, size) if frames == 1 else shape, dtype=torch.uint8, device=device)
    params = torch.stack([draw_touch_params() for _ in range(batch)])

    def call():
        apply_touch_aug(x, params)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call()
    tic = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - tic) / reps * 1e3


def needed_samples_per_s(mfu: float = 0.5, peak_tflops: float = H200_BF16_TFLOPS) -> float:
    """Stage-1 samples/s one accelerator consumes at ``mfu`` for a 50:50 image/clip mix (ViT-L/14, fwd + bwd)."""
    arch = get_arch("anytouch-l14")
    per_sample = np.mean([3 * mae_forward_flops(arch, 0.75, video=v)["total"] for v in (False, True)])
    return mfu * peak_tflops * 1e12 / per_sample


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=48, help="frames written per input (two recordings)")
    ap.add_argument("--size", type=int, default=224, help="model resolution")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing per pipeline and sample kind")
    ap.add_argument("--device", default="cpu", help="device for the augmentation timing (cpu | cuda)")
    ap.add_argument("--aug-batch", type=int, default=64, help="batch size of the augmentation timing")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    warnings.filterwarnings("ignore", message=".*TorchVision.*deprecated")
    results = {}
    for name, h, w, fmt in INPUTS:
        with tempfile.TemporaryDirectory() as root:
            write_tree(root, a.frames, h, w, fmt)
            results[name] = measure_input(root, a.size, a.seconds)
    print(f"samples per CPU-second (1 process, 1 thread), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"CPUs, -> {a.size}x{a.size}, touch-train augmentation; ratio = path / old, same run")
    print(f"{'input':<14}{'sample':<7}" + "".join(f"{p + ' /s':>11}" for p in PATHS) + f"{'new x':>8}{'packed x':>10}")
    for name, r in results.items():
        for kind in KINDS:
            old = r[kind, "old"]
            print(f"{name:<14}{kind:<7}" + "".join(f"{r[kind, p]:>11.1f}" for p in PATHS)
                  + f"{r[kind, 'new'] / old:>7.1f}x{r[kind, 'packed'] / old:>9.1f}x")
    device = torch.device(a.device)
    print(f"\ndevice augmentation (flips + jitter + normalise) on {a.device}, batch {a.aug_batch}:")
    for kind, t in (("image", 1), ("video", 4)):
        ms = device_aug_ms(device, a.aug_batch, a.size, t)
        print(f"  {kind:<6} {ms:8.1f} ms/batch  {a.aug_batch / ms * 1e3:9.0f} samples/s")
    need = needed_samples_per_s()
    print(f"\nCPU cores to feed one H200 at 50 % MFU ({H200_BF16_TFLOPS:.0f} TFLOP/s bf16): {need:.0f} stage-1 "
          f"samples/s, 50:50 image/clip")
    print(f"{'input':<14}" + "".join(f"{p:>9}" for p in PATHS))
    cores = {}
    for name, r in results.items():
        cores[name] = {p: need * (0.5 / r["image", p] + 0.5 / r["video", p]) for p in PATHS}
        print(f"{name:<14}" + "".join(f"{cores[name][p]:>9.1f}" for p in PATHS))
    return {"rates": results, "cores": cores, "needed_samples_per_s": need}


if __name__ == "__main__":
    main()
