"""ObjectFolder Real (Gao et al. CVPR 2023): spec 4.3 - 4.5.

Layout under ``<root>/objectfolder/real/tactile/``: touch paths containing ``gelsight/<n>.png`` (unpadded). Sensor
id 2 (as the original; the sensor's identity is disputed, see datasets.md).

Index (spec 7 bug 5): stage 1 ``<root>/contact_obj.csv`` (col 0 relative to ``tactile/``); cross kinds
``objectfolder/real/contact_obj.csv`` (verbatim ``tactile_datasets/...`` paths); each kind tries its original
file first. Stage 2 ``contact_text_obj.csv`` (``<root>/`` then ``objectfolder/real/``): col 0 touch path, col 1
camera path (both relative to ``tactile/``), col 2 text id -> ``<text_dir>/obj_<id>.pt``.
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, parse_int, read_rows

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
