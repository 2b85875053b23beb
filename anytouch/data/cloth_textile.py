"""Cloth textile classification (Yuan et al. ICRA 2018 squeezes, 20 textile types): dataset ``cloth_textile``, the
classification view of the Cloth frames the pre-training loader (:mod:`anytouch.data.cloth`) reads.

Layout under ``<root>/yuan18/Data_ICRA18/``: frames ``Data/<cloth>/<trial>/gelsight_frame/NNNN.png`` (from
``0001.png``, which shows the gel before contact: the background), ``cloth_metadata.json`` (cloth id -> its 11
properties, textile type last, 0..19; as in the release and in AnyTouch 2's copy) and the split files
``{train,test}_data_new.json`` (AnyTouch 2's garment-disjoint split: ``{id: {status, trial_index, cloth_index,
count}}``, ``count`` = frames of the trial; ``status`` unused). ``prepare`` copies those files from AnyTouch 2's
``data/`` folder or, without split files, writes a seeded garment-level split in the same format.

Each split entry gives two windows (as AnyTouch 2's loader): ending at the trial's last frame ``count`` and at
``count - frames * stride``, when the window stays after frame 1. ``val`` is a seeded share of the training
garments (:data:`VAL_FRACTION`, :data:`VAL_SEED`). The test split lacks classes 5, 10 and 15 in AnyTouch 2's split.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Dict

import numpy as np

from .bench_base import IndexedBench, SyntheticBench, bench_sample, check_split, window
from .bench_render import sensor_look, squeeze_window
from .io import DataError, open_text, read_image
from .probe_sets import carve_validation
from .spec import BenchTwin, DatasetSpec
from .tree import TreeWriter

__all__ = ["build_cloth_textile", "prepare_textile", "SPEC", "NUM_CLASSES", "VAL_FRACTION", "VAL_SEED"]

BASE = "yuan18/Data_ICRA18"
NUM_CLASSES = 20
VAL_FRACTION, VAL_SEED = 0.15, 0
TEST_FRACTION = 0.2  # share of garments in the test part of a split written by prepare
METADATA, SPLIT_FILES = "cloth_metadata.json", {"train": "train_data_new.json", "test": "test_data_new.json"}


def _json(path: str, what: str):
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path} (see datasets/cloth_textile/README.md)", path)
    try:
        with open_text(path, what) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} {path} is not valid JSON: {e}", path) from e


def _textile(meta, cloth: str, path: str) -> int:
    props = meta.get(cloth) if isinstance(meta, dict) else None
    label = props.get("textile_type") if isinstance(props, dict) else (props[-1] if isinstance(props, list) and
                                                                       props else None)
    if not isinstance(label, int) or not 0 <= label < NUM_CLASSES:
        raise DataError(f"{path}: textile type of cloth {cloth!r} is {label!r}; expected a list of properties "
                        f"ending with an int in 0..{NUM_CLASSES - 1}", path)
    return label


def build_cloth_textile(split: str = "train", root: str = ".", frames: int = 4, stride: int = 2) -> IndexedBench:
    """The ``cloth_textile`` set under ``root``: ``frames``-frame windows at ``stride`` of each split entry's trial,
    background ``0001.png``, target the textile type."""
    check_split(split)
    base = os.path.join(root, BASE)
    meta_path = os.path.join(base, METADATA)
    meta = _json(meta_path, "Cloth metadata")
    split_path = os.path.join(base, SPLIT_FILES["test" if split == "test" else "train"])
    rows = _json(split_path, "Cloth textile split file")
    if not isinstance(rows, dict):
        raise DataError(f"{split_path}: expected a dict {{id: {{trial_index, cloth_index, count}}}}", split_path)
    items = []
    for key, row in rows.items():
        try:
            cloth, trial, count = str(row["cloth_index"]), str(row["trial_index"]), int(row["count"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{split_path}: entry {key!r} = {row!r}; expected cloth_index, trial_index and an int "
                            "count", split_path) from None
        items.append((cloth, trial, count))
    if split != "test":
        items = carve_validation(items, split, VAL_FRACTION, VAL_SEED, groups=[c for c, _, _ in items])
    entries, paths = [], [meta_path]
    for cloth, trial, count in items:
        folder = os.path.join(base, "Data", cloth, trial, "gelsight_frame")
        label = _textile(meta, cloth, meta_path)
        for end in (count, count - frames * stride):
            ids = window(end, frames, stride)
            if ids[0] >= 2:  # frame 1 is the background
                files = [os.path.join(folder, f"{k:04d}.png") for k in ids]
                entries.append((files, os.path.join(folder, "0001.png"), label, cloth))
                paths += files + [entries[-1][1]]

    def load(entry) -> dict:
        files, bg, label, cloth = entry
        stack = np.stack([read_image(p).permute(1, 2, 0).numpy() for p in files])
        return bench_sample(stack, read_image(bg).permute(1, 2, 0).numpy(), "gelsight", label, "cloth_textile",
                            cloth)

    return IndexedBench(entries, load, lambda e: e[2], paths)


def build_twin(split: str = "train", num_samples: int = 256, seed: int = 0, image_size: int = 64,
               sensor: str = "gelsight", frames: int = 4, stride: int = 2) -> SyntheticBench:
    """Synthetic squeezes of 20 textile classes (:func:`anytouch.data.bench_render.squeeze_window`)."""
    look = sensor_look(sensor)

    def render(rng, label, group):
        stack, background = squeeze_window(rng, label, frames, stride, image_size, look)
        return bench_sample(stack, background, sensor, label, "cloth_textile", group)

    return SyntheticBench("cloth_textile", split, num_samples, seed, render,
                          lambda rng: int(rng.integers(NUM_CLASSES)))


def prepare_textile(raw: str, root: str) -> Dict[str, int]:
    """``<raw>/cloth_metadata.json`` (and AnyTouch 2's ``{train,test}_data_new.json`` if there) ->
    ``<root>/yuan18/Data_ICRA18/``. Without split files, writes a garment-level split (seeded, a fifth of the
    garments in test) of the trials already extracted under ``Data/`` (``prepare cloth``)."""
    base = os.path.join(root, BASE)
    os.makedirs(base, exist_ok=True)
    meta = _json(os.path.join(raw, METADATA), "Cloth metadata")
    shutil.copyfile(os.path.join(raw, METADATA), os.path.join(base, METADATA))
    have = [os.path.isfile(os.path.join(raw, f)) for f in SPLIT_FILES.values()]
    if all(have):
        for f in SPLIT_FILES.values():
            shutil.copyfile(os.path.join(raw, f), os.path.join(base, f))
        return {name: len(_json(os.path.join(base, f), "split file")) for name, f in SPLIT_FILES.items()}
    if any(have):
        raise DataError(f"{raw}: has one of {sorted(SPLIT_FILES.values())} but not the other", raw)
    data = os.path.join(base, "Data")
    trials = []
    for d, _, files in sorted(os.walk(data)):
        n = sum(bool(re.fullmatch(r"\d{4}\.png", f)) for f in files)
        if n and os.path.basename(d) == "gelsight_frame":
            cloth, trial = os.path.relpath(os.path.dirname(d), data).split(os.sep)[:2]
            _textile(meta, cloth, os.path.join(raw, METADATA))
            trials.append((cloth, trial, n))
    if not trials:
        raise DataError(f"no Data/<cloth>/<trial>/gelsight_frame/NNNN.png under {base}: run 'prepare cloth' first",
                        data)
    cloths = sorted({c for c, _, _ in trials})
    order = np.random.default_rng(VAL_SEED).permutation(len(cloths))
    test = {cloths[j] for j in order[:max(1, round(TEST_FRACTION * len(cloths)))]}
    out = {}
    for name, f in SPLIT_FILES.items():
        rows = {str(i): {"status": 1, "trial_index": t, "cloth_index": c, "count": n}
                for i, (c, t, n) in enumerate(trials) if (c in test) == (name == "test")}
        with open(os.path.join(base, f), "w", encoding="utf-8") as fh:
            json.dump(rows, fh)
        out[name] = len(rows)
    return out


def write_tree(w: TreeWriter) -> None:
    """A synthetic textile tree: ``2 * w.sequences + 2`` garments (textile type = garment number mod 20), two
    trials of ``max(w.frames, 8)`` frames each (frame 1 without contact), every fourth garment in test."""
    n, look = max(w.frames, 8), sensor_look("gelsight")
    meta, splits = {}, {"train": {}, "test": {}}
    for g in range(2 * w.sequences + 2):
        cloth, label = str(200 + g), g % NUM_CLASSES
        meta[cloth] = [0] * 10 + [label]
        for trial in ("1", "2"):
            rng = w.rng("cloth_textile", g, trial)
            stack, bg = squeeze_window(rng, label, n - 1, 1, w.size, look)
            for k, frame in enumerate([bg, *stack], 1):
                w.image(f"{BASE}/Data/{cloth}/{trial}/gelsight_frame/{k:04d}.png", frame.transpose(2, 0, 1))
            part = splits["test" if g % 4 == 3 else "train"]
            part[str(len(part))] = {"status": 1, "trial_index": trial, "cloth_index": cloth, "count": n}
    w.json(f"{BASE}/{METADATA}", meta)
    for name, f in SPLIT_FILES.items():
        w.json(f"{BASE}/{f}", splits[name])


SPEC = DatasetSpec("cloth_textile", "bench", build_cloth_textile, dirs=(BASE,), sensors=(0,), stride=2,
                   index_files=tuple(f"{BASE}/{f}" for f in (METADATA, *SPLIT_FILES.values())),
                   synthetic=BenchTwin(build_twin), tree=("cloth_textile", write_tree), prepare=prepare_textile)
