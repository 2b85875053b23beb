"""YCB-Slide (Suresh et al. ICRA 2023, DIGIT sliding on YCB objects): spec 4.3 - 4.5.

Layout under ``<root>/YCB-Slide/real/``: ``<object>/dataset_<k>/frames/frame_%07d.jpg``. Every frame is used (no
contact index). Clips have stride 3: video t-9, t-6, t-3, t; cross video t-6, t-3, t. Sensor id 1 (DIGIT); no vision,
no text (stage 2 uses it for the MAE term only).
"""
from __future__ import annotations

import os
import re

from .base import FrameFormat, TouchDataset

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
