"""Octopi / PhysiCLeAR (Yu et al. RSS 2024): spec 4.3 - 4.5 and spec 7 bug 6.

Frames are ``%010d.jpg`` from a GelSight Mini (sensor id 3); no vision. Stage 2 text ``<text_dir>/octopi_<id>.pt``.

Index: stage 1 ``contact_octopi.csv`` (``<root>/``, then ``octopi/``, then ``octopi/contact.csv``); cross kinds
``octopi/contact.csv`` then ``<root>/contact_octopi.csv``; stage 2 ``contact_text_octopi.csv`` (``<root>/`` then
``octopi/``; col 0 path ``a/b/c``, col 1 text id).

The original loaders disagree on where a row ``a/b/c`` lives (bug 6). Every alternative is tried, the one the
original used for this kind first: ``octopi/a/b/c``, ``octopi/processed/a/b/c``, ``octopi/b/c``,
``octopi/processed/b/c``, then the verbatim path; the first location holding every frame of the clip wins.
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, parse_int, read_rows

FORMAT = FrameFormat(r"(\d{10})\.jpg", "{:010d}.jpg")
# index of the original's location for each (stage, kind) in the candidate list above
FIRST = {(1, "image"): 0, (1, "video"): 2, (2, "image"): 0, (2, "video"): 3, "cross_image": 1, "cross_video": 3}


class Octopi(TouchDataset):
    """Octopi contact frames, sensor 3, text in stage 2."""

    source = "octopi"
    default_dirs = ("octopi",)
    has_text = True

    def _locations(self, rel: str):
        parts = rel.replace("\\", "/").split("/")
        processed = os.path.join(self.dir, "processed")
        cands = [os.path.join(self.dir, rel), os.path.join(processed, rel)]
        if len(parts) >= 3:
            tail = "/".join(parts[1:])
            cands += [os.path.join(self.dir, tail), os.path.join(processed, tail)]
        key = self.clip if self.clip.startswith("cross") else (self.stage, self.clip)
        first = min(FIRST[key], len(cands) - 1)
        ordered = [cands[first]] + [c for i, c in enumerate(cands) if i != first]
        return list(dict.fromkeys(ordered + self.row_candidates(rel, [])))

    def scan(self) -> None:
        if self.multimodal:
            name = "contact_text_octopi.csv"
            files = [os.path.join(self.root, name), os.path.join(self.dir, name)]
        elif self.clip.startswith("cross"):
            files = [os.path.join(self.dir, "contact.csv"), os.path.join(self.root, "contact_octopi.csv")]
        else:
            files = [os.path.join(self.root, "contact_octopi.csv"), os.path.join(self.dir, "contact_octopi.csv"),
                     os.path.join(self.dir, "contact.csv")]
        index = self.find_file(files, "contact index")
        for lineno, row in read_rows(index, min_cols=2 if self.multimodal else 1):
            found = self.find_clip(self._locations(row[0]), FORMAT, f"{index}:{lineno}")
            if not found:
                continue
            text = None
            if self.multimodal:
                text = self.text_file(f"octopi_{parse_int(row[1], index, lineno, '2 (text_id)')}.pt")
            self.add(*found, sensor=3, text=text)
