"""Touch and Go (TAG, Yang et al. NeurIPS 2022), pre-training part: docs/original/data.md.

Layout under ``<root>/TAG/``: touch ``dataset/<folder>/gelsight_frame/<image>``, camera
``dataset/<folder>/video_frame/<image>``, image names ``%010d.jpg``. Sensor id 0 (GelSight).

* Stage 1 and cross kinds read ``TAG/label.txt`` (lines ``folder/image,label``), every entry, so TAG test-split
  frames enter pre-training as in the original (docs/original/defects.md#19-tag-test-frames-in-pre-training).
* Stage 2 reads ``contact_text_tag_notest.csv`` (``<root>/`` first, then ``TAG/``; columns ``folder, image_name,
  text_id, test_flag``); text ``<text_dir>/tag_<text_id>.pt`` except on rows with ``test_flag == 1``, whose text is
  withheld (touch and vision still used).

``prepare tag`` extracts the recordings' videos and copies the TAG list files (module :data:`TAG_LISTS`), which the
Touch-and-Go source repository keeps under ``Visuo-tactile contrastive learning/dataset/`` (:func:`find_tag_lists`).
"""
from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional

from ..progress import progress as tqdm  # quiet off a terminal

from .base import FrameFormat, TouchDataset, parse_int, read_rows
from .extract import extract_video, find_files
from .io import DataError, open_text
from .spec import DatasetSpec, SyntheticTwin, loader
from .synthetic_render import TAG_MATERIALS, render_vision
from .tree import TreeWriter

FORMAT = FrameFormat(r"(\d{10})\.jpg", "{:010d}.jpg")


class TouchAndGo(TouchDataset):
    """TAG pre-training frames with camera image and (non-test) text in stage 2."""

    source = "tag"
    default_dirs = ("TAG",)
    has_text = True

    def _touch(self, folder: str, image: str) -> str:
        return os.path.join(self.dir, "dataset", folder, "gelsight_frame", image)

    def scan(self) -> None:
        if self.multimodal:
            self._scan_text_index()
            return
        index = self.find_file([os.path.join(self.dir, "label.txt")], "index file label.txt")
        for lineno, row in read_rows(index, min_cols=1):
            folder, _, image = row[0].replace("\\", "/").rpartition("/")
            if not folder or not image:
                raise DataError(f"{index}:{lineno}: entry {row[0]!r}; expected 'folder/image,label'", index)
            found = self.find_clip([self._touch(folder, image)], FORMAT, f"{index}:{lineno}")
            if found:
                self.add(*found, sensor=0)

    def _scan_text_index(self) -> None:
        name = "contact_text_tag_notest.csv"
        index = self.find_file([os.path.join(self.root, name), os.path.join(self.dir, name)], f"stage-2 index {name}")
        for lineno, row in read_rows(index, min_cols=4):
            folder, image = row[0], row[1]
            text_id = parse_int(row[2], index, lineno, "3 (text_id)")
            test_flag = parse_int(row[3], index, lineno, "4 (test_flag)")
            found = self.find_clip([self._touch(folder, image)], FORMAT, f"{index}:{lineno}")
            if not found:
                continue
            vision = os.path.join(self.dir, "dataset", folder, "video_frame", image)
            if not self.files.exists(vision):
                self.note("vision frame missing", vision)
                vision = None
            text = None if test_flag == 1 else self.text_file(f"tag_{text_id}.pt")
            self.add(*found, sensor=0, vision=vision, text=text)



TAG_LISTS = ("label.txt", "train.txt", "test.txt", "train_rough.txt", "test_rough.txt", "category_reference.txt")
# where a download keeps the list files, relative to --raw: the data folder, and the Touch-and-Go repository's
LIST_DIRS = (".", "dataset", os.path.join("Visuo-tactile contrastive learning", "dataset"),
             os.path.join("Touch-and-Go", "Visuo-tactile contrastive learning", "dataset"))
LIST_SEARCH_DEPTH = 4  # folders below --raw searched when the list files are in none of LIST_DIRS


def find_tag_lists(raw: str, extra: Optional[str] = None) -> Dict[str, str]:
    """``{list name: path}`` of the TAG list files: the first of ``extra``, ``LIST_DIRS`` under ``raw`` and then any
    folder at most ``LIST_SEARCH_DEPTH`` levels below ``raw`` (breadth first, sorted) that holds ``label.txt`` or
    ``train.txt``. DataError naming every place looked at if none holds them."""
    places = ([extra] if extra else []) + [os.path.normpath(os.path.join(raw, d)) for d in LIST_DIRS]
    for place in places:
        found = {n: os.path.join(place, n) for n in TAG_LISTS if os.path.isfile(os.path.join(place, n))}
        if found:
            return found
    level = [os.path.abspath(raw)]
    for _ in range(LIST_SEARCH_DEPTH):
        subdirs = []
        for d in level:
            try:
                subdirs += sorted(e.path for e in os.scandir(d) if e.is_dir())
            except OSError:
                continue
        for d in subdirs:
            if any(os.path.isfile(os.path.join(d, n)) for n in ("label.txt", "train.txt")):
                return {n: os.path.join(d, n) for n in TAG_LISTS if os.path.isfile(os.path.join(d, n))}
        level = subdirs
    raise DataError(f"TAG list files ({', '.join(TAG_LISTS)}) not found in {', '.join(places)} nor in any folder up "
                    f"to {LIST_SEARCH_DEPTH} levels below {raw}; they come with the Touch-and-Go repository "
                    "('Visuo-tactile contrastive learning/dataset/'): pass its folder with --lists", raw)


def prepare_tag(raw: str, root: str, start_index: int = 0, lists: Optional[str] = None) -> Dict[str, int]:
    """TAG: extract ``gelsight.mp4`` / ``video.mp4`` of every ``<raw>/dataset/<folder>/`` (or ``<raw>/<folder>/``)
    to ``<root>/TAG/dataset/<folder>/{gelsight,video}_frame/%010d.jpg``; copy the list files
    (:func:`find_tag_lists`: ``lists``, else found under ``raw``).

    Returns counts: ``folders``, ``frames``, ``lists`` and, when ``label.txt`` is present, ``label_entries`` /
    ``label_found`` (entries whose frame exists after extraction: a check of the frame numbering).
    """
    found = find_tag_lists(raw, lists)
    counts = {"folders": 0, "frames": 0, "lists": len(found)}
    out = os.path.join(root, "TAG")
    for video in tqdm(find_files(raw, r"gelsight\.mp4|video\.mp4"), desc="TAG videos", unit="video"):
        folder = os.path.basename(os.path.dirname(video))
        kind = "gelsight_frame" if os.path.basename(video) == "gelsight.mp4" else "video_frame"
        counts["frames"] += extract_video(video, os.path.join(out, "dataset", folder, kind), "{:010d}.jpg",
                                          start_index)
        counts["folders"] += kind == "gelsight_frame"
    for name, src in found.items():
        shutil.copyfile(src, os.path.join(out, name))
    label = os.path.join(out, "label.txt")
    if os.path.isfile(label):
        with open_text(label, "TAG label list") as f:
            entries = [ln.strip().rpartition(",")[0] for ln in f if ln.strip()]
        counts["label_entries"] = len(entries)
        counts["label_found"] = sum(
            os.path.isfile(os.path.join(out, "dataset", os.path.dirname(e), "gelsight_frame", os.path.basename(e)))
            for e in entries)
    return counts


def write_tree(w: TreeWriter) -> None:
    """Synthetic TAG: recordings with camera frames, ``label.txt``, the probe lists and the stage-2 text index."""
    label: List = []
    text_rows: List = []
    lists: Dict[str, List] = {"train.txt": [], "test.txt": [], "train_rough.txt": [], "test_rough.txt": []}
    n_folders = max(2, w.sequences)
    for k in range(n_folders):
        rng = w.rng("tag", k)
        mid = int(rng.integers(20))
        folder = f"2019010{k % 10}_{k:06d}"
        scene, frames = w.sequence(rng, 0, TAG_MATERIALS[mid])
        split = "test" if k == n_folders - 1 else "train"
        for t, f in enumerate(frames):
            name = f"{t:010d}.jpg"
            w.image(f"TAG/dataset/{folder}/gelsight_frame/{name}", f)
            w.image(f"TAG/dataset/{folder}/video_frame/{name}", render_vision(scene, w.size, rng))
            value = -1 if t == 0 else mid  # a first frame out of contact carries label -1, as in TAG's lists
            label.append((f"{folder}/{name}", value))
            lists[f"{split}.txt"].append((f"{folder}/{name}", value))
            lists[f"{split}_rough.txt"].append((f"{folder}/{name}", int(TAG_MATERIALS[mid].rough)))
            text_id = k * w.frames + t
            text_rows.append((folder, name, text_id, int(split == "test")))
            w.text(f"text/tag_{text_id}.pt", TAG_MATERIALS[mid], t)
    w.lines("TAG/label.txt", label)
    for name, rows in lists.items():
        w.lines(f"TAG/{name}", rows)
    w.lines("contact_text_tag_notest.csv", text_rows)


SPEC = DatasetSpec(
    "tag", "pretrain", loader(TouchAndGo), dirs=TouchAndGo.default_dirs, sensors=(0,),
    modalities=("touch", "vision", "text"), index_files=("TAG/label.txt", "contact_text_tag_notest.csv"),
    synthetic=SyntheticTwin(text_withheld=0.25), tree=("tag", write_tree), prepare=prepare_tag,
    prepare_options=("start_index", "lists"))
