"""``anytouch pack``: write each pre-training dataset's frames once, at model resolution, into a packed store."""
from __future__ import annotations

import os

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``pack`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("pack", help="pack datasets into memory-mapped uint8 shards (then train with data.store=packed)")
    p.add_argument("--root", required=True, help="the data root (the original's tactile_datasets/)")
    p.add_argument("--out", help="where the stores go, one folder per dataset (default: <root>/packed)")
    p.add_argument("--size", type=int, default=224, help="frame side in pixels: the model's touch resolution")
    p.add_argument("--vision-size", type=int, default=224, help="camera image side: the model's vision resolution")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2,
                   help="2 (default): also camera images and text, for stage 2; 1: touch frames only")
    p.add_argument("--text-dir", help="folder of the pre-tokenised text files (default: <root>/text)")
    p.add_argument("--names", help="comma-separated subset of the pre-training datasets (default: all found)")
    p.add_argument("--kinds", default="image,video,cross_image,cross_video",
                   help="sample kinds to index (frames are stored once whatever the kinds)")
    p.set_defaults(func=pack)


def pack(args) -> int:
    """Pack, then print where the stores are and how to use them."""
    from ..data.packed import pack_root  # here, not at the top: imports torch (keeps anytouch --help fast)

    for flag, value in (("--size", args.size), ("--vision-size", args.vision_size)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive number of pixels, got {value}")
    out = args.out or os.path.join(args.root, "packed")
    written = pack_root(args.root, out, args.size, args.names.split(",") if args.names else None,
                        tuple(k for k in args.kinds.split(",") if k), stage=args.stage, vision_size=args.vision_size,
                        text_dir=args.text_dir)
    print(f"{len(written)} store(s) written under {out}; train with data.store=packed data.packed_dir={out}; "
          f"check with anytouch verify --packed {out}")
    return 0
