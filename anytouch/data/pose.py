"""Pose estimation from the Sparsh pose release (Hugging Face ``facebook/digit-pose-estimation``): dataset ``pose``,
regress the SE(2) change (dx, dy in m, dtheta in rad) of a held object over the last 5 samples, seen by one DIGIT.

Released layout under ``<root>/digit-pose-estimation/``: ``{train,test}/{pringles,sugar}/bag_NN.pkl``, each a dict
with ``digit_<finger>`` (the finger's encoded frames, one per sample) and ``object_<finger>_rel_pose_n5`` (per
sample, the 4x4 pose change of the object over the last 5 samples); no-contact frames
``bgs/digit_<finger>.png``. Other keys (object pose, joints) are not read.

A sample is the frame pair (t - 5, t) of a bag, t >= 5, with target ``(T[0, 3], T[1, 3]) * translation_scale``
metres and ``atan2(T[1, 0], T[0, 0])`` radians of that sample's 4x4 ``T``. The release does not state its
translation unit; ``translation_scale`` (m per stored unit) defaults to 1e-3 (millimetres, which its classification
thresholds of 0.1 - 5 suggest). Unlike the release's own probe we neither swap x and y nor bin the values.
The ring finger is the default (as the release's probe). Splits: ``test`` = every bag of ``test/`` (the release's
config lists bag_00 - 05 only), ``val`` = a seeded fifth of the ``train/`` bags (:data:`VAL_FRACTION`,
:data:`VAL_SEED`), ``train`` = the other bags.
"""
from __future__ import annotations

import math
import os
import re
from typing import Dict

import numpy as np

from .bench_base import IndexedBench, SyntheticBench, bench_sample, check_split, decode_frame, encode_png
from .bench_render import PAD_METRES, background, pattern_scene, pose_pair, render_posed, sensor_look
from .extract import place_tree
from .io import DataError, read_image
from .probe_sets import carve_validation
from .safe_pickle import load_pickle
from .spec import BenchTwin, DatasetSpec
from .tree import TreeWriter

__all__ = ["build_pose", "prepare_pose_release", "SPEC", "FOLDER", "HORIZON", "VAL_FRACTION", "VAL_SEED"]

FOLDER = "digit-pose-estimation"
FINGERS = ("index", "middle", "ring")
HORIZON = 5  # samples spanned by the release's relative-pose label
VAL_FRACTION, VAL_SEED = 0.2, 0


def _bags(base: str, part: str):
    folder = os.path.join(base, part)
    if not os.path.isdir(folder):
        raise DataError(f"pose: folder not found: {folder} (see datasets/pose/README.md)", folder)
    bags = sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
                  if re.fullmatch(r"bag_\d+\.pkl", f))
    if not bags:
        raise DataError(f"pose: no <object>/bag_NN.pkl under {folder}", folder)
    return bags


def _se2(T: np.ndarray, scale: float) -> np.ndarray:
    return np.array([T[0, 3] * scale, T[1, 3] * scale, math.atan2(T[1, 0], T[0, 0])], np.float32)


def build_pose(split: str = "train", root: str = ".", finger: str = "ring", frames: int = 2, stride: int = HORIZON,
               translation_scale: float = 1e-3) -> IndexedBench:
    """The ``pose`` set under ``root``: frame pairs (t - 5, t) of ``finger``'s DIGIT and their SE(2) change."""
    check_split(split)
    if finger not in FINGERS:
        raise ValueError(f"pose: finger {finger!r}; expected one of {FINGERS}")
    if (frames, stride) != (2, HORIZON):
        raise ValueError(f"pose: frames={frames}, stride={stride}; the release's label spans {HORIZON} samples, so "
                         f"the window is the pair (t - {HORIZON}, t): frames=2, stride={HORIZON}")
    base = os.path.join(root, FOLDER)
    bags = _bags(base, "test" if split == "test" else "train")
    if split != "test":
        bags = carve_validation(bags, split, VAL_FRACTION, VAL_SEED)
    bg_path = os.path.join(base, "bgs", f"digit_{finger}.png")
    background = read_image(bg_path).permute(1, 2, 0).numpy()
    frames_key, pose_key = f"digit_{finger}", f"object_{finger}_rel_pose_n5"
    entries, seqs = [], {}
    for bag in bags:
        obj = load_pickle(bag, "pose bag")
        if not isinstance(obj, dict) or frames_key not in obj or pose_key not in obj:
            raise DataError(f"{bag}: expected a dict with {frames_key!r} and {pose_key!r}", bag)
        seq = list(obj[frames_key])
        try:
            rel = np.asarray(obj[pose_key], np.float64).reshape(-1, 4, 4)
        except ValueError:
            raise DataError(f"{bag}: {pose_key} is not a sequence of 4x4 matrices", bag) from None
        if len(rel) != len(seq):
            raise DataError(f"{bag}: {len(seq)} frames but {len(rel)} poses in {pose_key}", bag)
        seqs[bag] = seq
        group = os.path.relpath(bag, base)
        entries += [(bag, t, _se2(rel[t], translation_scale), group) for t in range(HORIZON, len(seq))]

    def load(entry) -> dict:
        bag, t, target, group = entry
        pair = np.stack([decode_frame(seqs[bag][k], f"{bag} frame {k}") for k in (t - HORIZON, t)])
        return bench_sample(pair, background, "digit", target, "pose", group)

    return IndexedBench(entries, load, None, bags + [bg_path])


def build_twin(split: str = "train", num_samples: int = 256, seed: int = 0, image_size: int = 64,
               sensor: str = "digit", frames: int = 2, stride: int = HORIZON) -> SyntheticBench:
    """Synthetic frame pairs of a textured pattern moved by a known SE(2) displacement
    (:func:`anytouch.data.bench_render.pose_pair`)."""
    if frames != 2:
        raise ValueError(f"pose: frames={frames}; the pose window is a frame pair (frames=2)")
    look = sensor_look(sensor)

    def render(rng, _, group):
        pair, background, target = pose_pair(rng, image_size, look)
        return bench_sample(pair, background, sensor, target, "pose", group)

    return SyntheticBench("pose", split, num_samples, seed, render)


def prepare_pose_release(raw: str, root: str, mode: str = "copy") -> Dict[str, int]:
    """The pose download (``<raw>/{train,test}/<object>/bag_NN.pkl`` and ``<raw>/bgs/``) -> ``<root>/
    digit-pose-estimation/`` by ``mode`` = ``copy`` | ``symlink`` (one link per top folder); checks it is complete."""
    counts = {part: len(_bags(raw, part)) for part in ("train", "test")}
    for finger in FINGERS:
        if not os.path.isfile(os.path.join(raw, "bgs", f"digit_{finger}.png")):
            raise DataError(f"pose: background {raw}/bgs/digit_{finger}.png not found", raw)
    for part in ("train", "test", "bgs"):
        src, dst = os.path.join(raw, part), os.path.join(root, FOLDER, part)
        place_tree(src, dst, mode)
    return {"train_bags": counts["train"], "test_bags": counts["test"]}


def write_tree(w: TreeWriter) -> None:
    """A synthetic pose release: ``w.sequences + 1`` train bags and one test bag per object, ``max(w.frames, 8)``
    samples each, a pattern random-walking under each finger; translations stored in millimetres."""
    look, n, mm = sensor_look("digit"), max(w.frames, 8), PAD_METRES / 2 * 1000
    for finger in FINGERS:
        w.image(f"{FOLDER}/bgs/digit_{finger}.png", background(look, w.size, w.rng("bg", finger)).transpose(2, 0, 1))
    for part, count in (("train", w.sequences + 1), ("test", 1)):
        for obj in ("pringles", "sugar"):
            for b in range(count):
                rng = w.rng("pose", part, obj, b)
                bag = {}
                for finger in FINGERS:
                    scene = pattern_scene(rng)
                    poses = np.cumsum(np.c_[rng.uniform(-0.03, 0.03, (n, 2)), rng.uniform(-0.08, 0.08, n)], axis=0)
                    bag[f"digit_{finger}"] = [encode_png(render_posed(scene, p, 0.9, w.size, look, rng)) for p in poses]
                    rel = np.tile(np.eye(4), (n, 1, 1))
                    for t in range(HORIZON, n):
                        dx, dy, dth = poses[t] - poses[t - HORIZON]
                        rel[t, :2, :2] = [[math.cos(dth), -math.sin(dth)], [math.sin(dth), math.cos(dth)]]
                        rel[t, :2, 3] = dx * mm, dy * mm
                    bag[f"object_{finger}_rel_pose_n5"] = rel
                w.pickle(f"{FOLDER}/{part}/{obj}/bag_{b:02d}.pkl", bag)


SPEC = DatasetSpec("pose", "bench", build_pose, dirs=(FOLDER,), sensors=(1,), stride=HORIZON,
                   index_files=(f"{FOLDER}/{{train,test}}/<object>/bag_NN.pkl", f"{FOLDER}/bgs/digit_<finger>.png"),
                   synthetic=BenchTwin(build_twin), tree=("pose", write_tree), prepare=prepare_pose_release,
                   prepare_options=("mode",))
