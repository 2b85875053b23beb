"""Build the full AnyTouch ViT-L/14 stage-2 model (random init, nothing downloaded) and report time and memory.

    python scripts/build_full_model.py                  # build + one touch/vision/text forward
    python scripts/build_full_model.py --roundtrip DIR  # also save our .pt, export safetensors, reload both
    python scripts/build_full_model.py --anytouch2 4    # the AnyTouch 2 ViT-B/16 encoder (4- or 2-frame variant)

Prints wall time of each step and the process's peak resident memory (``resource.getrusage``, Linux KiB).
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def step(name: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{name:<28} {time.perf_counter() - t:8.2f} s   peak RSS {peak_rss_gib():6.2f} GiB", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="anytouch-l14", help="architecture preset (default: anytouch-l14)")
    ap.add_argument("--no-forward", action="store_true", help="skip the forward passes")
    ap.add_argument("--roundtrip", type=Path, help="folder for a save / export / reload round trip")
    ap.add_argument("--anytouch2", type=int, choices=(2, 4), help="build the AnyTouch 2 ViT-B/16 encoder instead")
    args = ap.parse_args()
    if args.anytouch2:
        return anytouch2(args)

    from anytouch.models import AnyTouchModel, get_arch

    arch = get_arch(args.arch)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, arch {arch.name}")
    model = step("build AnyTouchModel", lambda: AnyTouchModel(arch).eval())
    n = sum(p.numel() for p in model.state_dict().values())
    print(f"{len(model.state_dict())} state-dict entries, {n / 1e6:.1f} M values")
    s = arch.touch.image_size
    if not args.no_forward:
        with torch.no_grad():
            step("encode_touch (1 image)", lambda: model.encode_touch(torch.zeros(1, 3, s, s), "digit"))
            step("encode_vision (1 image)", lambda: model.encode_vision(torch.zeros(1, 3, arch.vision.image_size, arch.vision.image_size)))
            step("encode_text (1 caption)", lambda: model.encode_text(["a rough fabric surface"]))
    if args.roundtrip:
        import anytouch
        from anytouch.checkpoint import ours

        args.roundtrip.mkdir(parents=True, exist_ok=True)
        pt = step("save_checkpoint (.pt)", lambda: ours.save_checkpoint(args.roundtrip / "full.pt", model))
        st = step("export_safetensors", lambda: ours.export_safetensors(pt, args.roundtrip / "full.safetensors"))
        del model
        step("load_model (.pt)", lambda: anytouch.load_model(pt))
        step("load_model (.safetensors)", lambda: anytouch.load_model(st))
        step("load_encoder (.pt)", lambda: anytouch.load_encoder(pt))
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


def anytouch2(args) -> None:
    """The AnyTouch 2 ViT-B/16 encoder: build, one clip forward, and (--roundtrip) upstream layout save + reload."""
    from anytouch.models.anytouch2 import AnyTouch2Encoder
    from anytouch.models.config import AnyTouch2Config

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, AnyTouch 2 ViT-B/16, {args.anytouch2} frames")
    enc = step("build AnyTouch2Encoder", lambda: AnyTouch2Encoder(AnyTouch2Config(num_frames=args.anytouch2)).eval())
    n = sum(p.numel() for p in enc.state_dict().values())
    print(f"{len(enc.state_dict())} state-dict entries, {n / 1e6:.2f} M values")
    if not args.no_forward:
        with torch.no_grad():
            clip = torch.zeros(1, enc.num_frames, 3, enc.image_size, enc.image_size)
            step("forward (1 clip, cls)", lambda: enc(clip, "digit"))
    if args.roundtrip:
        import anytouch
        from anytouch.checkpoint import anytouch2 as a2

        args.roundtrip.mkdir(parents=True, exist_ok=True)
        pth = step("save_upstream (.pth)", lambda: a2.save_upstream(enc, args.roundtrip / "anytouch2.pth"))
        st = step("export_safetensors", lambda: a2.export_safetensors(enc, args.roundtrip / "anytouch2.safetensors"))
        del enc
        step("load_encoder (.pth)", lambda: anytouch.load_encoder(pth))
        step("load_encoder (.safetensors)", lambda: anytouch.load_encoder(st))
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
