"""Octopi / PhysiCLeAR (Yu et al. RSS 2024): docs/original/data.md and docs/original/defects.md#6-octopi-paths-disagree.

Frames are ``%010d.jpg`` from a GelSight Mini (sensor id 3); no vision. Stage 2 text ``<text_dir>/octopi_<id>.pt``.

Index: stage 1 ``contact_octopi.csv`` (``<root>/``, then ``octopi/``, then ``octopi/contact.csv``); cross kinds
``octopi/contact.csv`` then ``<root>/contact_octopi.csv``; stage 2 ``contact_text_octopi.csv`` (``<root>/`` then
``octopi/``; col 0 path ``a/b/c``, col 1 text id).

The original loaders disagree on where a row ``a/b/c`` lives (bug 6). Every alternative is tried, the one the
original used for this kind first: ``octopi/a/b/c``, ``octopi/processed/a/b/c``, ``octopi/b/c``,
``octopi/processed/b/c``, then the verbatim path; the first location holding every frame of the clip wins.

``prepare octopi`` applies Octopi's own frame selection (:func:`anytouch.data.extract.octopi_selection`) and writes
its layout, ``processed/physiclear_<object>_<k>/%010d.jpg``, so the original index files resolve.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Dict, List

from ..progress import progress as tqdm  # quiet off a terminal

from .base import FrameFormat, TouchDataset, parse_int, read_rows
from .extract import (RULES, contact_rows, extract_video, find_files, octopi_selection, read_video, write_frame,
                      write_rows)
from .io import DataError
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS
from .tree import TreeWriter

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


OCTOPI_RULE = "octopi"
MIN_FRAMES = 5  # Octopi drops a recording that keeps fewer frames


def _recordings(raw: str) -> List[tuple]:
    """(object, n, path) of every ``<object>_<n>.mov`` under ``raw``, by object then n."""
    out = []
    for video in find_files(raw, r".+\.mov"):
        m = re.fullmatch(r"(.+)_(\d+)", os.path.splitext(os.path.basename(video))[0])
        if m is None:
            raise DataError(f"Octopi video {video}: expected a name <object>_<n>.mov", video)
        out.append((m.group(1), int(m.group(2)), video))
    return sorted(out)


def prepare_octopi(raw: str, root: str, rule: str = OCTOPI_RULE, start_index: int = 0) -> Dict[str, int]:
    """Octopi: every ``<object>_<n>.mov`` under ``raw`` -> frames under ``<root>/octopi/processed/`` and the index
    ``<root>/contact_octopi.csv`` (rows ``processed/<folder>/<frame>``, the first location every loader tries).

    ``rule="octopi"`` (default, Octopi's ``process_dataset.py``): only the frames :func:`octopi_selection` keeps,
    under their video frame index, in ``physiclear_<object>_<k>/%010d.jpg`` (k = 0, 1, ... over the object's kept
    recordings, in the order of n); a recording keeping fewer than 5 frames is dropped. Every written frame is
    indexed. Our rules ``all`` / ``diff`` / ``top`` (:func:`anytouch.data.extract.select_contact`) write every frame
    (so clips have their earlier frames) to ``<object>_<n>/``, numbered from ``start_index``, and index the
    contact frames.
    """
    if rule not in (OCTOPI_RULE,) + RULES:
        raise ValueError(f"octopi rule {rule!r}; expected one of {(OCTOPI_RULE,) + RULES}")
    rows, frames, dropped = [], 0, 0
    recordings = _recordings(raw)
    per_object: Dict[str, int] = defaultdict(int)
    for obj, n, video in tqdm(recordings, desc="Octopi videos", unit="video"):
        if rule != OCTOPI_RULE:
            folder = f"{obj}_{n}"
            out = os.path.join(root, "octopi", "processed", folder)
            count = extract_video(video, out, FORMAT.template, start_index)
            frames += count
            names = [FORMAT.template.format(start_index + k) for k in range(count)]
            rows += contact_rows(out, names, f"processed/{folder}", rule)
            continue
        decoded = read_video(video)
        keep = octopi_selection(decoded)
        if len(keep) < MIN_FRAMES:
            dropped += 1
            continue
        folder = f"physiclear_{obj}_{per_object[obj]}"
        per_object[obj] += 1
        out = os.path.join(root, "octopi", "processed", folder)
        os.makedirs(out, exist_ok=True)
        for i in keep:
            write_frame(os.path.join(out, FORMAT.template.format(int(i))), decoded[i])
            rows.append([f"processed/{folder}/{FORMAT.template.format(int(i))}"])
        frames += len(keep)
    write_rows(os.path.join(root, "contact_octopi.csv"), rows)
    return {"videos": len(recordings), "dropped": dropped, "frames": frames, "index_rows": len(rows)}


def write_tree(w: TreeWriter) -> None:
    """Synthetic Octopi: ``processed/object_<k>/`` recordings, every frame but the first indexed, with text."""
    rows = []
    for k in range(w.sequences):
        rng = w.rng("octopi", k)
        m = TAG_MATERIALS[int(rng.integers(20))]
        _, frames = w.sequence(rng, 3, m)
        for t, f in enumerate(frames):
            w.image(f"octopi/processed/object_{k}/{t:010d}.jpg", f)
        rows += [[f"processed/object_{k}/{t:010d}.jpg", k] for t in range(1, w.frames)]
        w.text(f"text/octopi_{k}.pt", m, k)
    w.lines("contact_octopi.csv", [r[:1] for r in rows])
    w.lines("contact_text_octopi.csv", rows)


SPEC = DatasetSpec(
    "octopi", "pretrain", loader(Octopi), dirs=Octopi.default_dirs, sensors=(3,), modalities=("touch", "text"),
    index_files=("contact_octopi.csv", "contact_text_octopi.csv", "octopi/contact.csv"), synthetic=SyntheticTwin(),
    tree=("octopi", write_tree), prepare=prepare_octopi, prepare_options=("rule", "start_index"))
