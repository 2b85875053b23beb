"""TVL (Fu et al. ICML 2024, "A Touch, Vision, and Language Dataset"): its HCT part and SSVTP (docs/original/data.md).

**TVL-HCT** under ``<root>/TVL/tvl_dataset/hct/``: stage 1 and cross kinds read ``data<k>/contact.json`` (key
``tactile``: paths relative to ``data<k>/`` like ``<session>/tactile/<id>-<suffix>.jpg``); stage 2 reads
``contact_text_tvl.csv`` (``<root>/`` then ``hct/``; col 0 path relative to ``hct/``, col 1 text id ->
``<text_dir>/tvl_<id>.pt``). The camera frame is the tactile path with ``tactile`` replaced by ``vision`` (only in
the part below ``hct/``). Clip neighbours are the files whose *numeric id equals* id-k exactly (fixes
docs/original/defects.md#7-tvl-prefix-matching, the original's ``startswith(str(id-k))``); if several files share an id,
the first in sorted order is used. Sensor id 1 (DIGIT).

**SSVTP** (Kerr et al. 2023): ``images_tac/image_<id>_tac.jpg`` with camera image ``images_rgb/`` (name with every
``tac`` replaced by ``rgb``) and text ``<text_dir>/ssvtp_<id>.pt``. Folder ``TVL/tvl_dataset/ssvtp/`` (stage 1 / 2)
or ``SSVTP/ssvtp_data/`` (the copy the original's cross loader reads,
docs/original/defects.md#5-cross-loaders-read-other-files): each kind tries its own first. Images only (no video kinds).
Sensor id 1.
"""
from __future__ import annotations

import glob
import json
import os
import re
from typing import Optional

from .base import FileIndex, FrameFormat, TouchDataset, parse_int, read_rows
from .io import DataError, open_text
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS, render_vision
from .tree import TreeWriter

IMAGE_EXT = (".jpg", ".jpeg", ".png")


class _TVLFormat(FrameFormat):
    """``<id>-<suffix>.jpg``: the neighbour of id t is the file whose leading number is exactly t."""

    def __init__(self):
        super().__init__(r"(\d+)(?:-.*)?\.(?:jpg|jpeg|png)", "<id>-<suffix>.jpg")
        self._by_id = {}

    def neighbour(self, files: FileIndex, folder: str, t: int) -> Optional[str]:
        if folder not in self._by_id:
            ids = {}
            for name in sorted(files.names(folder)):
                i = self.parse(name)
                if i is not None:
                    ids.setdefault(i, name)
            self._by_id[folder] = ids
        return self._by_id[folder].get(t)


class TVL(TouchDataset):
    """TVL-HCT contact frames, sensor 1, camera image and text in stage 2."""

    source = "tvl"
    default_dirs = ("TVL/tvl_dataset/hct",)
    has_text = True

    def _add(self, fmt: _TVLFormat, rel_to_hct: str, where: str, text: Optional[str]) -> None:
        found = self.find_clip([os.path.normpath(os.path.join(self.dir, rel_to_hct))], fmt, where)
        if not found:
            return
        vision = None
        if self.multimodal:
            vision = os.path.join(self.dir, rel_to_hct.replace("tactile", "vision"))
            if not os.path.isfile(vision):
                self.note("vision frame missing", vision)
                vision = None
        self.add(*found, sensor=1, vision=vision, text=text)

    def scan(self) -> None:
        fmt = _TVLFormat()
        if self.multimodal:
            name = "contact_text_tvl.csv"
            index = self.find_file([os.path.join(self.root, name), os.path.join(self.dir, name)], f"index {name}")
            for lineno, row in read_rows(index, min_cols=2):
                text = self.text_file(f"tvl_{parse_int(row[1], index, lineno, '2 (text_id)')}.pt")
                self._add(fmt, row[0], f"{index}:{lineno}", text)
            return
        indexes = sorted(glob.glob(os.path.join(glob.escape(self.dir), "data*", "contact.json")))
        if not indexes:
            raise DataError(f"tvl: no data*/contact.json index under {self.dir}", self.dir)
        for index in indexes:
            try:
                with open_text(index, "TVL index file") as f:
                    paths = json.load(f)["tactile"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{index}: {type(e).__name__}: {e}; expected a JSON object with a 'tactile' list",
                                index) from e
            if not isinstance(paths, list):
                raise DataError(f"{index}: 'tactile' is a {type(paths).__name__}; expected a list of paths", index)
            sub = os.path.basename(os.path.dirname(index))
            for k, rel in enumerate(paths):
                self._add(fmt, f"{sub}/{rel}", f"{index}['tactile'][{k}]", None)


class SSVTP(TouchDataset):
    """SSVTP tactile images, sensor 1, camera image and text in stage 2. Image kinds only."""

    source = "ssvtp"
    default_dirs = ("TVL/tvl_dataset/ssvtp", "SSVTP/ssvtp_data")
    kinds = ("image", "cross_image")
    has_text = True

    def dir_candidates(self):
        return self.default_dirs[::-1] if self.clip.startswith("cross") else self.default_dirs

    def scan(self) -> None:
        tac = os.path.join(self.dir, "images_tac")
        if not os.path.isdir(tac):
            raise DataError(f"ssvtp: folder not found: {tac} (expected images_tac/image_<id>_tac.jpg)", tac)
        names = [n for n in self.files.names(tac) if n.lower().endswith(IMAGE_EXT)]
        for name in sorted(names, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)]):
            fields = name.split("_")
            if len(fields) < 3 or "tac" not in name:
                self.note("unrecognised file name", os.path.join(tac, name))
                continue
            vision = text = None
            if self.multimodal:
                vision = os.path.join(self.dir, "images_rgb", name.replace("tac", "rgb"))
                if not os.path.isfile(vision):
                    self.note("vision frame missing", vision)
                    vision = None
                text = self.text_file(f"ssvtp_{fields[1]}.pt")
            self.add(tac, (name,), sensor=1, vision=vision, text=text)


def write_tvl_tree(w: TreeWriter) -> None:
    """Synthetic TVL-HCT: DIGIT and camera frames per session, ``contact.json`` and the stage-2 text index."""
    paths, text_rows = [], []
    for k in range(w.sequences):
        rng = w.rng("tvl", k)
        m = TAG_MATERIALS[int(rng.integers(20))]
        scene, frames = w.sequence(rng, 1, m)
        for t, f in enumerate(frames):
            name = f"{k * 100 + t}-{1000 + t}.jpg"
            w.image(f"TVL/tvl_dataset/hct/data1/sess{k}/tactile/{name}", f)
            w.image(f"TVL/tvl_dataset/hct/data1/sess{k}/vision/{name}", render_vision(scene, w.size, rng))
            paths.append(f"sess{k}/tactile/{name}")
            text_rows.append([f"data1/sess{k}/tactile/{name}", k])
        w.text(f"text/tvl_{k}.pt", m, k)
    os.makedirs(os.path.join(w.root, "TVL/tvl_dataset/hct/data1"), exist_ok=True)
    with open(os.path.join(w.root, "TVL/tvl_dataset/hct/data1/contact.json"), "w", encoding="utf-8") as f:
        json.dump({"tactile": paths, "vision": [p.replace("tactile", "vision") for p in paths]}, f)
    w.lines("contact_text_tvl.csv", text_rows)


def write_ssvtp_tree(w: TreeWriter) -> None:
    """Synthetic SSVTP: single tactile / camera image pairs with text."""
    for i in range(w.sequences * 2):
        rng = w.rng("ssvtp", i)
        m = TAG_MATERIALS[int(rng.integers(20))]
        scene, frames = w.sequence(rng, 1, m, n=1)
        w.image(f"TVL/tvl_dataset/ssvtp/images_tac/image_{i}_tac.jpg", frames[0])
        w.image(f"TVL/tvl_dataset/ssvtp/images_rgb/image_{i}_rgb.jpg", render_vision(scene, w.size, rng))
        w.text(f"text/ssvtp_{i}.pt", m, i)


TVL_SPEC = DatasetSpec(
    "tvl", "pretrain", loader(TVL), dirs=TVL.default_dirs, sensors=(1,), modalities=("touch", "vision", "text"),
    index_files=("TVL/tvl_dataset/hct/data<k>/contact.json", "contact_text_tvl.csv"), synthetic=SyntheticTwin(),
    tree=("tvl", write_tvl_tree))
SSVTP_SPEC = DatasetSpec(
    "ssvtp", "pretrain", loader(SSVTP), dirs=SSVTP.default_dirs, sensors=(1,), modalities=("touch", "vision", "text"),
    video=False, synthetic=SyntheticTwin(), tree=("ssvtp", write_ssvtp_tree))
