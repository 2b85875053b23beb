"""YCB-Slide (Suresh et al. ICRA 2023, DIGIT sliding on YCB objects): docs/original/data.md.

Layout under ``<root>/YCB-Slide/real/``: ``<object>/dataset_<k>/frames/frame_%07d.jpg``. Every frame is used (no
contact index). Clips have stride 3: video t-9, t-6, t-3, t; cross video t-6, t-3, t. Sensor id 1 (DIGIT); no vision,
no text (stage 2 uses it for the MAE term only).
"""
from __future__ import annotations

import os
import re
from typing import Dict

from ..progress import progress as tqdm  # quiet off a terminal

from .base import FrameFormat, TouchDataset
from .extract import place_tree
from .io import DataError
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import OF_MATERIALS
from .tree import TreeWriter

FORMAT = FrameFormat(r"frame_(\d{7})\.jpg", "frame_{:07d}.jpg")


class YCBSlide(TouchDataset):
    """YCB-Slide real sliding frames, sensor 1."""

    source = "ycb_slide"
    default_dirs = ("YCB-Slide/real",)
    stride = 3

    def scan(self) -> None:
        for obj in sorted(os.listdir(self.dir)):
            obj_dir = os.path.join(self.dir, obj)
            if not os.path.isdir(obj_dir):
                continue
            runs = [d for d in os.listdir(obj_dir) if re.fullmatch(r"dataset_\d+", d)]
            for run in sorted(runs, key=lambda d: int(d.split("_")[1])):
                folder = os.path.join(obj_dir, run, "frames")
                frames = sorted((t, n) for n in self.files.names(folder) if (t := FORMAT.parse(n)) is not None)
                for t, name in frames:
                    found = self.find_clip([os.path.join(folder, name)], FORMAT, folder)
                    if found:
                        self.add(*found, sensor=1)


def prepare_ycb(raw: str, root: str, mode: str = "copy") -> Dict[str, int]:
    """YCB-Slide: ``<raw>/real/<object>/dataset_<k>/frames/`` (or ``<raw>/<object>/...``) -> ``<root>/YCB-Slide/
    real/<object>/dataset_<k>/frames/`` by ``mode`` = ``copy`` | ``symlink`` (one link per frames folder)."""
    if mode not in ("copy", "symlink"):
        raise ValueError(f"mode {mode!r}; expected 'copy' or 'symlink'")
    src_root = os.path.join(raw, "real") if os.path.isdir(os.path.join(raw, "real")) else raw
    runs = sorted(os.path.join(src_root, o, d) for o in os.listdir(src_root) if os.path.isdir(os.path.join(src_root, o))
                  for d in os.listdir(os.path.join(src_root, o)) if re.fullmatch(r"dataset_\d+", d))
    if not runs:
        raise DataError(f"no <object>/dataset_<k>/ folder under {src_root}", src_root)
    frames = 0
    for run in tqdm(runs, desc="YCB-Slide runs", unit="run"):
        src = os.path.join(run, "frames")
        dst = os.path.join(root, "YCB-Slide", "real", os.path.relpath(src, src_root))
        place_tree(src, dst, mode)
        frames += len(os.listdir(src))
    return {"runs": len(runs), "frames": frames}


def write_tree(w: TreeWriter) -> None:
    """Synthetic YCB-Slide: one sliding run per object, at least 10 frames (clips have stride 3)."""
    for k in range(w.sequences):
        rng = w.rng("ycb", k)
        _, frames = w.sequence(rng, 1, OF_MATERIALS[k % 7], n=max(w.frames, 10))
        for t, f in enumerate(frames):
            w.image(f"YCB-Slide/real/object_{k}/dataset_0/frames/frame_{t:07d}.jpg", f)


SPEC = DatasetSpec(
    "ycb_slide", "pretrain", loader(YCBSlide), dirs=YCBSlide.default_dirs, sensors=(1,), stride=YCBSlide.stride,
    synthetic=SyntheticTwin(), tree=("ycb_slide", write_tree), prepare=prepare_ycb, prepare_options=("mode",))
