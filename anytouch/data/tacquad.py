"""TacQuad (the AnyTouch paper's own dataset, HF ``xxuan01/TacQuad``): docs/original/data.md#tacquad, #text; anchors:
docs/original/recipe.md#stage-2-cross-sensor-matching.

Layout under ``<root>/tacquad/``: ``contact_indoor.csv`` / ``contact_outdoor.csv`` (no header; ``item, gelsight_start,
gelsight_end, digit_start, digit_end, duragel_start, duragel_end``, inclusive contact ranges; an empty or negative
cell, or start > end, means the object was not touched with that sensor), frames
``data_<part>/<item>/<sensor>/<t>.png`` and camera frames ``data_<part>/<item>/img_<sensor>/<k>.png``.
Sensors: GelSight Mini (folder ``gelsight``, id 3), DIGIT (``digit``, id 1), DuraGel (``duragel``, id 4); Tac3D is
not used (as in the original). The camera frame of touch frame t is picked by proportional time,
``k = int(t / len(listdir(<sensor>)) * len(listdir(img_<sensor>)))``. The text of object row k (0-based) is
``<root>/text_tacquad/tacquad_<part>_<k>.pt``, shared by all its sensors and frames.

Older names from the original's history are accepted as fallbacks: ``contact_coarse.csv`` (indoor),
``contact_out.csv`` (outdoor) and the DuraGel folder ``tirgel``. Cross kinds skip the first 3 frames of each range
(docs/original/data.md#clip-frames) and set ``object_ids`` (one id per CSV row and part) for :mod:`anytouch.data.cross`.
"""
from __future__ import annotations

import os
from typing import Sequence

from .base import FrameFormat, TouchDataset, parse_int, read_rows
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS, render_vision
from .tree import TreeWriter

PARTS = {"indoor": ("contact_indoor.csv", "contact_coarse.csv"), "outdoor": ("contact_outdoor.csv", "contact_out.csv")}
# (sensor id, folder names to try, CSV column of the range start)
SENSORS = ((3, ("gelsight",), 1), (1, ("digit",), 3), (4, ("duragel", "tirgel"), 5))
FORMAT = FrameFormat(r"(\d+)\.png", "{}.png")


class TacQuad(TouchDataset):
    """TacQuad indoor + outdoor (``parts`` selects), sensors 3 / 1 / 4, vision and per-object text in stage 2."""

    source = "tacquad"
    default_dirs = ("tacquad",)
    text_default = "text_tacquad"
    has_text = True

    def __init__(self, root: str, parts: Sequence[str] = ("indoor", "outdoor"), **options):
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise ValueError(f"tacquad: unknown parts {unknown or parts}; expected a subset of {tuple(PARTS)}")
        self.parts = tuple(parts)
        super().__init__(root, **options)

    def scan(self) -> None:
        skip = 3 if self.clip.startswith("cross") else 0
        obj = 0
        for part in self.parts:
            csv_path = self.find_file([os.path.join(self.dir, n) for n in PARTS[part]], f"{part} contact index")
            data = os.path.join(self.dir, f"data_{part}")
            for k, (lineno, row) in enumerate(read_rows(csv_path, min_cols=7)):
                where = f"{csv_path}:{lineno}"
                item = os.path.join(data, row[0])
                text = self.text_file(f"tacquad_{part}_{k}.pt") if self.multimodal else None
                for sensor, folders, col in SENSORS:
                    if not row[col] or not row[col + 1]:
                        continue
                    start = parse_int(row[col], csv_path, lineno, f"{col + 1} ({folders[0]}_start)")
                    end = parse_int(row[col + 1], csv_path, lineno, f"{col + 2} ({folders[0]}_end)")
                    if start < 0 or end < start:
                        continue
                    folder = next((os.path.join(item, f) for f in folders if os.path.isdir(os.path.join(item, f))),
                                  os.path.join(item, folders[0]))
                    img_dir = os.path.join(item, "img_" + os.path.basename(folder))
                    n_touch, n_img = len(self.files.names(folder)), len(self.files.names(img_dir))
                    for t in range(start + skip, end + 1):
                        found = self.find_clip([os.path.join(folder, FORMAT.template.format(t))], FORMAT, where)
                        if found is None:
                            continue
                        vision = None
                        if self.multimodal:
                            vision = os.path.join(img_dir, f"{int(t / n_touch * n_img)}.png")
                            if not self.files.exists(vision):
                                self.note("vision frame missing", vision)
                                vision = None
                        self.add(found[0], found[1], sensor, vision=vision, text=text, obj=obj)
                obj += 1


def write_tree(w: TreeWriter) -> None:
    """Synthetic TacQuad: each object pressed with the three sensors, camera frames, contact CSVs, text."""
    sensors = {"gelsight": 3, "digit": 1, "duragel": 4}
    for part in ("indoor", "outdoor"):
        rows = []
        for k in range(w.sequences):
            rng = w.rng("tacquad", part, k)
            m = TAG_MATERIALS[int(rng.integers(20))]
            item = f"{part}_object_{k}"
            row = [item]
            n = w.frames + 3  # the cross-sensor loaders skip the first 3 frames of each contact range
            # (docs/original/recipe.md#stage-2-cross-sensor-matching)
            for folder, sid in sensors.items():
                scene, frames = w.sequence(rng, sid, m, n)
                for t, f in enumerate(frames):
                    w.image(f"tacquad/data_{part}/{item}/{folder}/{t}.png", f)
                for j in range(2):
                    w.image(f"tacquad/data_{part}/{item}/img_{folder}/{j}.png", render_vision(scene, w.size, rng))
                row += [1, n - 1]
            rows.append(row)
            w.text(f"text_tacquad/tacquad_{part}_{k}.pt", m, k)
        w.lines(f"tacquad/contact_{part}.csv", rows)


SPEC = DatasetSpec(
    "tacquad", "pretrain", loader(TacQuad), dirs=TacQuad.default_dirs, sensors=(3, 1, 4),
    modalities=("touch", "vision", "text"), index_files=tuple(f"tacquad/{n}" for n, _ in PARTS.values()),
    synthetic=SyntheticTwin(), tree=("tacquad", write_tree), cross_anchor=True)
