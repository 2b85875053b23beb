"""Force estimation and slip detection from the Sparsh force / slip releases (Hugging Face
``facebook/digit-force-estimation`` and ``facebook/gelsight-force-estimation``; the ``gelsight`` one is a GelSight
Mini): datasets ``force`` (regress Fx, Fy, Fz in N at the current frame) and ``slip`` (0 / 1 at the current frame).

Released layout, one folder per download under the data root (``<sensor>-force-estimation``, ``sensor`` = ``digit``
or ``gelsight``), then ``<indenter>/batch_<k>/``:

* ``dataset_<sensor>_NN.pkl``: lists of encoded frames; the files of a batch, in NN order, are one frame sequence
  (``org_dataset_*.pkl`` files are not read);
* ``dataset_slip_forces.pkl``: ``{"in_contact": per-frame 0/1, "trajectories": {id: {"indexes": frame ids,
  "forces": (N, 3) N, "slip_label": (N,)}}}``.

A sample is the trajectory position ``p`` with the window ``indexes[p - (T-1)*stride], ..., indexes[p]``
(every ``p`` with a full window; the release's own loader iterates ``indexes[5:]`` but labels from position 0).
The target is the force at ``p`` as stored, unclipped (Fz positive in compression) or ``slip_label[p]``; the
background is the batch's first frame with ``in_contact == 0``. Pickles are read with a restricted unpickler.

Splits are frozen per (sensor, task) in :data:`SPLITS`, by batch folder, with a validation batch the release does
not have: the force test set is the flat indenter, which is left out of training (the release's DIGIT training list
has it; its maintainer advises against that for shape generalisation); slip tests on the DIGIT ``sphere2/batch_test``
and, since the GelSight ``batch_test`` is not in the release, on GelSight ``sphere/batch_6``.
"""
from __future__ import annotations

import os
import re
from functools import partial
from typing import Dict, List, Optional, Tuple

import numpy as np
from ..progress import progress as tqdm  # quiet off a terminal

from .bench_base import (IndexedBench, SyntheticBench, bench_sample, check_split, decode_frame, encode_png,
                         window)
from .bench_render import press_window, sensor_look
from .extract import place_tree
from .io import DataError
from .safe_pickle import load_pickle
from .spec import BenchTwin, DatasetSpec
from .tree import TreeWriter

__all__ = ["SPLITS", "FOLDERS", "build_force_slip", "prepare_force_release", "FORCE_SPEC", "SLIP_SPEC"]

FOLDERS = {"digit": "digit-force-estimation", "gelsight_mini": "gelsight-force-estimation"}
_PREFIX = {"digit": "digit", "gelsight_mini": "gelsight"}  # the sensor word in the frame file names
SPLITS: Dict[Tuple[str, str], Dict[str, Tuple[str, ...]]] = {
    ("force", "digit"): {"train": ("sphere/batch_1", "sharp/batch_1"), "val": ("sphere/batch_2", "sharp/batch_2"),
                         "test": ("flat/batch_1",)},
    ("force", "gelsight_mini"): {"train": ("sphere/batch_1", "sphere/batch_2", "sphere/batch_3", "sharp/batch_1"),
                                 "val": ("sphere/batch_4", "sharp/batch_2"), "test": ("flat/batch_1",)},
    ("slip", "digit"): {"train": ("sphere2/batch_1", "sphere2/batch_2"), "val": ("sphere2/batch_3",),
                        "test": ("sphere2/batch_test",)},
    ("slip", "gelsight_mini"): {"train": ("sphere/batch_1", "sphere/batch_3", "sphere/batch_4"),
                                "val": ("sphere/batch_5",), "test": ("sphere/batch_6",)},
}
FORCES_FILE = "dataset_slip_forces.pkl"


def _frame_files(folder: str, sensor: str) -> List[str]:
    rx = re.compile(rf"dataset_{_PREFIX[sensor]}_(\d+)\.pkl")
    found = sorted((int(m.group(1)), f) for f in os.listdir(folder) for m in [rx.fullmatch(f)] if m)
    if not found:
        raise DataError(f"no dataset_{_PREFIX[sensor]}_NN.pkl frame file in {folder}", folder)
    return [os.path.join(folder, f) for _, f in found]


def _read_batch(folder: str, task: str) -> Tuple[np.ndarray, Dict]:
    """(in_contact (N,), {trajectory id: (indexes, forces (n, 3), slip (n,))}) of one batch folder, checked."""
    path = os.path.join(folder, FORCES_FILE)
    obj = load_pickle(path, "force / slip label file")
    if not isinstance(obj, dict) or "in_contact" not in obj or not isinstance(obj.get("trajectories"), dict):
        raise DataError(f"{path}: expected a dict with 'in_contact' and a dict 'trajectories'", path)
    out = {}
    for tid, traj in obj["trajectories"].items():
        try:
            idx = np.asarray(traj["indexes"], np.int64).reshape(-1)
            forces = np.asarray(traj["forces"], np.float32).reshape(len(idx), 3)
            slip = np.asarray(traj["slip_label"], np.int64).reshape(len(idx)) if task == "slip" else None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: trajectory {tid!r}: {e!r}; expected 'indexes' (N,), 'forces' (N, 3) and "
                            "'slip_label' (N,) of one length", path) from None
        if slip is not None and not np.isin(slip, (0, 1)).all():
            raise DataError(f"{path}: trajectory {tid!r}: slip_label values {sorted(set(slip.tolist()))}; "
                            "expected 0 / 1", path)
        out[tid] = (idx, forces, slip)
    return np.asarray(obj["in_contact"]).reshape(-1), out


class _Batches:
    """Frame sequences and backgrounds of batch folders, loaded on first use (the frame pickles are large)."""

    def __init__(self, sensor: str):
        self.sensor, self.cache = sensor, {}

    def get(self, folder: str, in_contact: np.ndarray) -> Tuple[list, np.ndarray]:
        if folder not in self.cache:
            frames = []
            for path in _frame_files(folder, self.sensor):
                part = load_pickle(path, "frame file")
                if not isinstance(part, (list, tuple)):
                    raise DataError(f"{path}: holds a {type(part).__name__}; expected a list of frames", path)
                frames += list(part)
            free = np.flatnonzero(in_contact[:len(frames)] == 0)
            if not len(free):
                raise DataError(f"{folder}: no frame with in_contact == 0 (the background)", folder)
            self.cache[folder] = (frames, decode_frame(frames[free[0]], f"{folder} frame {free[0]}"))
        return self.cache[folder]


def build_force_slip(task: str, split: str = "train", root: str = ".", sensor: Optional[str] = None,
                     frames: int = 2, stride: int = 5) -> IndexedBench:
    """The ``force`` or ``slip`` set of ``sensor`` (``digit`` | ``gelsight_mini``) under ``root``: samples of
    :mod:`anytouch.data.bench_base` with a ``frames``-frame window at ``stride``; splits as :data:`SPLITS`.

    ``sensor=None`` takes the sensor whose release folder is under ``root`` (DIGIT when both or neither are), so
    ``verify`` checks whichever release is there; the benchmark tasks name their sensor.
    """
    check_split(split)
    if sensor is None:
        sensor = next((s for s in FOLDERS if os.path.isdir(os.path.join(root, FOLDERS[s]))), "digit")
    if (task, sensor) not in SPLITS:
        raise ValueError(f"{task}: sensor {sensor!r}; expected one of {tuple(FOLDERS)}")
    base = os.path.join(root, FOLDERS[sensor])
    entries, paths, contact = [], [], {}
    for rel in SPLITS[(task, sensor)][split]:
        folder = os.path.join(base, rel)
        if not os.path.isdir(folder):
            raise DataError(f"{task} {split}: batch folder not found: {folder} (see datasets/{task}/README.md)",
                            folder)
        contact[folder], trajectories = _read_batch(folder, task)
        paths += _frame_files(folder, sensor) + [os.path.join(folder, FORCES_FILE)]
        for tid, (idx, forces, slip) in trajectories.items():
            for p in range((frames - 1) * stride, len(idx)):
                target = int(slip[p]) if task == "slip" else forces[p]
                entries.append((folder, idx[window(p, frames, stride)], target, f"{rel}/{tid}"))
    batches = _Batches(sensor)

    def load(entry) -> dict:
        folder, ids, target, group = entry
        seq, background = batches.get(folder, contact[folder])
        if ids.max() >= len(seq):
            raise DataError(f"{folder}: frame index {ids.max()} beyond the {len(seq)} frames of its frame files",
                            folder)
        stack = np.stack([decode_frame(seq[k], f"{folder} frame {k}") for k in ids])
        return bench_sample(stack, background, sensor, target, task, group)

    return IndexedBench(entries, load, (lambda e: e[2]) if task == "slip" else None, paths)


def build_twin(task: str, split: str = "train", num_samples: int = 256, seed: int = 0, image_size: int = 64,
               sensor: str = "digit", frames: int = 2, stride: int = 5) -> SyntheticBench:
    """Synthetic press-and-drag windows (:func:`anytouch.data.bench_render.press_window`), half of them slipping."""
    look = sensor_look(sensor)

    def render(rng, slip, group):
        stack, background, forces, slips = press_window(rng, slip, frames, stride, image_size, look)
        target = int(slips[-1]) if task == "slip" else forces[-1]
        return bench_sample(stack, background, sensor, target, task, group)

    return SyntheticBench(task, split, num_samples, seed, render, lambda rng: int(rng.integers(2)))


def prepare_force_release(raw: str, root: str, mode: str = "copy") -> Dict[str, int]:
    """A force-estimation download (``<raw>/<indenter>/batch_<k>/``) -> ``<root>/<sensor>-force-estimation/`` by
    ``mode`` = ``copy`` | ``symlink`` (one link per batch); the sensor is read off the frame file names."""
    batches = sorted(os.path.relpath(d, raw) for d, _, files in os.walk(raw) if FORCES_FILE in files)
    if not batches:
        raise DataError(f"no <indenter>/batch_<k>/{FORCES_FILE} under {raw}", raw)
    found = {s for s in FOLDERS for b in batches
             if any(re.fullmatch(rf"dataset_{_PREFIX[s]}_\d+\.pkl", f) for f in os.listdir(os.path.join(raw, b)))}
    if len(found) != 1:
        raise DataError(f"{raw}: frame files of {sorted(found) or 'no'} sensor(s); expected dataset_digit_NN.pkl or "
                        "dataset_gelsight_NN.pkl files of one sensor", raw)
    dest = os.path.join(root, FOLDERS[found.pop()])
    for b in tqdm(batches, desc="force batches", unit="batch"):
        src, dst = os.path.join(raw, b), os.path.join(dest, b)
        place_tree(src, dst, mode)
    return {"batches": len(batches)}


def write_tree(w: TreeWriter) -> None:
    """Synthetic force / slip releases of both sensors with every batch of :data:`SPLITS`: per batch ``w.sequences``
    press-and-drag trajectories of ``max(w.frames, 8)`` frames after one no-contact frame, frames split over two
    ``dataset_<sensor>_NN.pkl`` files."""
    n = max(w.frames, 8)
    for sensor in FOLDERS:
        rels = sorted({rel for (_, s), parts in SPLITS.items() if s == sensor for v in parts.values() for rel in v})
        for rel in rels:
            rng = w.rng("force", sensor, rel)
            look = sensor_look(sensor)
            seq, contact, trajectories = [], [0], {}
            for j in range(w.sequences):
                indenter = re.sub(r"\d", "", rel.split("/")[0])
                stack, bg, forces, slips = press_window(rng, j % 2, n, 1, w.size, look, indenter)
                if not seq:
                    seq.append(encode_png(bg))
                trajectories[j] = {"indexes": list(range(len(seq), len(seq) + n)), "forces": forces,
                                   "slip_label": slips}
                seq += [encode_png(f) for f in stack]
                contact += [1] * n
            half = len(seq) // 2
            for k, part in enumerate((seq[:half], seq[half:])):
                w.pickle(f"{FOLDERS[sensor]}/{rel}/dataset_{_PREFIX[sensor]}_{k:02d}.pkl", part)
            w.pickle(f"{FOLDERS[sensor]}/{rel}/{FORCES_FILE}",
                     {"in_contact": np.asarray(contact), "trajectories": trajectories})


def _spec(task: str) -> DatasetSpec:
    return DatasetSpec(task, "bench", partial(build_force_slip, task), dirs=tuple(FOLDERS.values()), sensors=(1, 3),
                       stride=5, index_files=(f"<sensor>-force-estimation/<indenter>/batch_<k>/{FORCES_FILE}",),
                       synthetic=BenchTwin(partial(build_twin, task)), tree=("force_slip", write_tree),
                       prepare=prepare_force_release, prepare_options=("mode",))


FORCE_SPEC, SLIP_SPEC = _spec("force"), _spec("slip")
