"""Cloth (Yuan et al. ICRA 2018, "Active Clothing Material Perception"), folder ``yuan18``: spec 4.3 - 4.5.

Layout under ``<root>/yuan18/Data_ICRA18/Data/``: paths containing ``gelsight_frame/NNNN.png`` (4-digit). Sensor id
0 (GelSight); no vision, no text (stage 2 uses it for the MAE term only).

Index (spec 7 bug 5): ``<root>/contact_yuan.csv`` (col 0 relative to ``Data/``, stage 1 / 2) and
``yuan18/Data_ICRA18/contact_yuan.csv`` (verbatim ``tactile_datasets/...`` paths, cross kinds); each kind tries its
original file first, and each row under ``Data/``, verbatim, then relative to root (first complete clip wins).
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, read_rows

FORMAT = FrameFormat(r"(\d{4})\.png", "{:04d}.png")


class Cloth(TouchDataset):
    """Cloth contact frames, sensor 0."""

    source = "cloth"
    default_dirs = ("yuan18/Data_ICRA18",)

    def scan(self) -> None:
        data = os.path.join(self.dir, "Data")
        files = [os.path.join(self.root, "contact_yuan.csv"), os.path.join(self.dir, "contact_yuan.csv")]
        index = self.find_file(files[::-1] if self.clip.startswith("cross") else files, "contact index")
        for lineno, row in read_rows(index):
            found = self.find_clip(self.row_candidates(row[0], [data]), FORMAT, f"{index}:{lineno}")
            if found:
                self.add(*found, sensor=0)
