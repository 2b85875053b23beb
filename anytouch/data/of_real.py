"""ObjectFolder Real (Gao et al. CVPR 2023): docs/original/data.md.

Layout under ``<root>/objectfolder/real/tactile/``: touch paths containing ``gelsight/<n>.png`` (unpadded). Sensor
id 2 (as the original; the sensor's identity is disputed, see datasets.md).

Index (docs/original/defects.md#5-cross-loaders-read-other-files): stage 1 ``<root>/contact_obj.csv`` (col 0 relative to
``tactile/``); cross kinds ``objectfolder/real/contact_obj.csv`` (verbatim ``tactile_datasets/...`` paths); each kind
tries its original file first. Stage 2 ``contact_text_obj.csv`` (``<root>/`` then ``objectfolder/real/``): col 0 touch
path, col 1 camera path (both relative to ``tactile/``), col 2 text id -> ``<text_dir>/obj_<id>.pt``.
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, parse_int, read_rows
from .spec import ContactIndex, DatasetSpec, SyntheticTwin, loader
from .synthetic_render import OF_MATERIALS, render_vision
from .tree import TreeWriter

FORMAT = FrameFormat(r"(\d+)\.png", "{}.png")


class ObjectFolderReal(TouchDataset):
    """ObjectFolder Real contact frames, sensor 2, camera image and text in stage 2."""

    source = "of_real"
    default_dirs = ("objectfolder/real",)
    has_text = True

    def scan(self) -> None:
        tactile = os.path.join(self.dir, "tactile")
        name = "contact_text_obj.csv" if self.multimodal else "contact_obj.csv"
        files = [os.path.join(self.root, name), os.path.join(self.dir, name)]
        index = self.find_file(files[::-1] if self.clip.startswith("cross") else files, f"index file {name}")
        for lineno, row in read_rows(index, min_cols=3 if self.multimodal else 1):
            found = self.find_clip(self.row_candidates(row[0], [tactile]), FORMAT, f"{index}:{lineno}")
            if not found:
                continue
            vision = text = None
            if self.multimodal:
                vision = next((c for c in self.row_candidates(row[1], [tactile]) if os.path.isfile(c)), None)
                if vision is None:
                    self.note("vision frame missing", os.path.join(tactile, row[1]))
                text = self.text_file(f"obj_{parse_int(row[2], index, lineno, '3 (text_id)')}.pt")
            self.add(*found, sensor=2, vision=vision, text=text)


def write_tree(w: TreeWriter) -> None:
    """Synthetic ObjectFolder Real: GelSlim frames and camera images per object, stage-1 and stage-2 indexes."""
    rows, text_rows = [], []
    for k in range(w.sequences):
        rng = w.rng("of_real", k)
        m = OF_MATERIALS[k % len(OF_MATERIALS)]
        scene, frames = w.sequence(rng, 2, m)
        base = f"{k}/tactile_data/1/0"
        for t, f in enumerate(frames):
            w.image(f"objectfolder/real/tactile/{base}/gelsight/{t}.png", f)
            w.image(f"objectfolder/real/tactile/{base}/vision/{t}.png", render_vision(scene, w.size, rng))
            rows.append([f"{base}/gelsight/{t}.png"])
            text_rows.append([f"{base}/gelsight/{t}.png", f"{base}/vision/{t}.png", k])
        w.text(f"text/obj_{k}.pt", m, k)
    w.lines("contact_obj.csv", rows)
    w.lines("contact_text_obj.csv", text_rows)


SPEC = DatasetSpec(
    "of_real", "pretrain", loader(ObjectFolderReal), dirs=ObjectFolderReal.default_dirs, sensors=(2,),
    modalities=("touch", "vision", "text"),
    index_files=("contact_obj.csv", "contact_text_obj.csv", "objectfolder/real/contact_obj.csv"),
    synthetic=SyntheticTwin(materials=(0, 2, 3, 4, 6, 16, 18)), tree=("of_real", write_tree),
    contact_index=ContactIndex("objectfolder/real/tactile", r"\d+\.png", "contact_obj.csv"))
