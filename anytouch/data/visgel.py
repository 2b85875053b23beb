"""VisGel (Li et al. CVPR 2019, "Connecting Touch and Vision via Cross-Modal Prediction"): docs/original/data.md.

Layout under ``<root>/visgel/images/``: touch ``touch/<...>/frameNNNN.jpg`` (4-digit), camera frames at the same
relative path under ``vision/``. Sensor id 0 (GelSight); no text.

Index (docs/original/defects.md#5-cross-loaders-read-other-files: the original reads different files per loader,
accepted here as alternatives): ``<root>/contact_visgel.csv`` (col 0 relative to ``images/touch/``, stage 1 / 2) and
``visgel/images/contact_visgel.csv`` (verbatim paths from the original repository root, cross kinds). Stage 1 / 2
try the first file first, cross kinds the second; each row is resolved under ``images/touch/``, then as a verbatim
``tactile_datasets/...`` path, then relative to root: the first location holding all the clip's frames wins.
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, read_rows
from .spec import ContactIndex, DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS, render_vision
from .tree import TreeWriter

FORMAT = FrameFormat(r"frame(\d{4})\.jpg", "frame{:04d}.jpg")


class VisGel(TouchDataset):
    """VisGel contact frames, sensor 0, camera frame in stage 2."""

    source = "visgel"
    default_dirs = ("visgel",)

    def scan(self) -> None:
        touch_root = os.path.join(self.dir, "images", "touch")
        vision_root = os.path.join(self.dir, "images", "vision")
        files = [os.path.join(self.root, "contact_visgel.csv"), os.path.join(self.dir, "images", "contact_visgel.csv")]
        index = self.find_file(files[::-1] if self.clip.startswith("cross") else files, "contact index")
        for lineno, row in read_rows(index):
            found = self.find_clip(self.row_candidates(row[0], [touch_root]), FORMAT, f"{index}:{lineno}")
            if not found:
                continue
            vision = None
            if self.multimodal:
                rel = os.path.relpath(os.path.join(found[0], found[1][-1]), touch_root)
                vision = None if rel.startswith("..") else os.path.join(vision_root, rel)
                if vision is None or not os.path.isfile(vision):
                    self.note("vision frame missing", vision or rel)
                    vision = None
            self.add(*found, sensor=0, vision=vision)


def write_tree(w: TreeWriter) -> None:
    """Synthetic VisGel: touch and camera frames per recording; the index leaves out each first frame."""
    rows = []
    for k in range(w.sequences):
        rng = w.rng("visgel", k)
        scene, frames = w.sequence(rng, 0, TAG_MATERIALS[int(rng.integers(20))])
        for t, f in enumerate(frames):
            w.image(f"visgel/images/touch/seen/rec{k}/frame{t:04d}.jpg", f)
            w.image(f"visgel/images/vision/seen/rec{k}/frame{t:04d}.jpg", render_vision(scene, w.size, rng))
            rows += [[f"seen/rec{k}/frame{t:04d}.jpg"]] if t > 0 else []
    w.lines("contact_visgel.csv", rows)


SPEC = DatasetSpec(
    "visgel", "pretrain", loader(VisGel), dirs=VisGel.default_dirs, sensors=(0,), modalities=("touch", "vision"),
    index_files=("contact_visgel.csv", "visgel/images/contact_visgel.csv"), synthetic=SyntheticTwin(),
    tree=("visgel", write_tree),
    contact_index=ContactIndex("visgel/images/touch", r"frame\d{4}\.jpg", "contact_visgel.csv"))
