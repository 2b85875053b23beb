"""Cloth (Yuan et al. ICRA 2018, "Active Clothing Material Perception"), folder ``yuan18``: docs/original/data.md.

Layout under ``<root>/yuan18/Data_ICRA18/Data/``: paths containing ``gelsight_frame/NNNN.png`` (4-digit). Sensor id
0 (GelSight); no vision, no text (stage 2 uses it for the MAE term only). As in the release, a trial's frames are
numbered from ``0001.png`` (frame 1 shows the gel before contact); trials hold 50 - 250 frames.

Index (docs/original/defects.md#5-cross-loaders-read-other-files): ``<root>/contact_yuan.csv`` (col 0 relative to
``Data/``, stage 1 / 2) and ``yuan18/Data_ICRA18/contact_yuan.csv`` (verbatim ``tactile_datasets/...`` paths, cross
kinds); each kind tries its original file first, and each row under ``Data/``, verbatim, then relative to root (first
complete clip wins).
"""
from __future__ import annotations

import os
from typing import Dict

from ..progress import progress as tqdm  # quiet off a terminal

from .base import FrameFormat, TouchDataset, read_rows
from .extract import contact_rows, extract_video, find_files, write_rows
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS
from .tree import TreeWriter

FORMAT = FrameFormat(r"(\d{4})\.png", "{:04d}.png")
FIRST_FRAME = 1  # the release numbers a trial's frames from 0001.png


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


def prepare_cloth(raw: str, root: str, rule: str = "all", start_index: int = FIRST_FRAME) -> Dict[str, int]:
    """Cloth: ``<raw>/<cloth>/<trial>/GelSight_video.mp4`` (``raw`` = the ``Data/`` folder) ->
    ``<root>/yuan18/Data_ICRA18/Data/<cloth>/<trial>/gelsight_frame/%04d.png`` numbered from ``start_index``
    (default 1, as the release); index ``<root>/contact_yuan.csv`` (paths relative to ``Data/``) with the contact
    ``rule``."""
    data = os.path.join(root, "yuan18", "Data_ICRA18", "Data")
    rows, frames = [], 0
    videos = find_files(raw, r"GelSight_video\.mp4")
    for video in tqdm(videos, desc="Cloth videos", unit="video"):
        rel = os.path.relpath(os.path.dirname(video), raw).replace(os.sep, "/")
        out = os.path.join(data, rel, "gelsight_frame")
        n = extract_video(video, out, FORMAT.template, start_index)
        frames += n
        rows += contact_rows(out, [FORMAT.template.format(start_index + k) for k in range(n)],
                             f"{rel}/gelsight_frame", rule)
    write_rows(os.path.join(root, "contact_yuan.csv"), rows)
    return {"videos": len(videos), "frames": frames, "index_rows": len(rows)}


def write_tree(w: TreeWriter) -> None:
    """Synthetic Cloth: one trial per recording, frames from ``0001.png``, every frame indexed."""
    rows = []
    for k in range(w.sequences):
        rng = w.rng("cloth", k)
        _, frames = w.sequence(rng, 0, TAG_MATERIALS[13])
        for t, f in enumerate(frames, FIRST_FRAME):
            w.image(f"yuan18/Data_ICRA18/Data/{k}/1/gelsight_frame/{t:04d}.png", f)
            rows.append([f"{k}/1/gelsight_frame/{t:04d}.png"])
    w.lines("contact_yuan.csv", rows)


SPEC = DatasetSpec(
    "cloth", "pretrain", loader(Cloth), dirs=Cloth.default_dirs, sensors=(0,),
    index_files=("contact_yuan.csv", "yuan18/Data_ICRA18/contact_yuan.csv"),
    synthetic=SyntheticTwin(materials=(4, 7, 9, 13, 14, 19)), tree=("cloth", write_tree), prepare=prepare_cloth,
    prepare_options=("rule", "start_index"))
