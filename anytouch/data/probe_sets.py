"""The downstream (linear-probe) datasets of AnyTouch (ICLR 2025), docs/original/probes.md#probe-datasets (transforms:
docs/original/data.md#transforms).

``tag_material`` / ``tag_roughness`` / ``tag_hardness`` (Touch and Go), ``feel`` (The Feeling of Success, A/B
GelSight pairs) and ``of1`` / ``of2`` (ObjectFolder 1.0 / 2.0 renderings) read the original's index files under the
data root. Samples follow docs/design.md: ``touch`` (3,H,W) float ImageNet-normalised (Feel: (2,3,H,W), frame A
first, both frames with the same augmentation), ``sensor`` int, ``label`` int, ``source`` str.

Beyond the original: ``split="val"`` with ``val_fraction > 0`` carves a seeded validation part out of the training
list (:func:`carve_validation`), so a probe can select its epoch without looking at the test set
(docs/original/probes.md#protocol, docs/original/defects.md#19-tag-test-frames-in-pre-training: the original reports the
best test epoch). ``SPECS`` declares the TAG and ObjectFolder probe sets (Feel's spec is in :mod:`anytouch.data.feel`).
"""
from __future__ import annotations

import csv
import json
import os
import pickle
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .device_aug import load_touch_uint8
from .io import DataError, open_text, read_image
from .safe_pickle import NumpyOnlyUnpickler
from .spec import DatasetSpec, ProbeTwin
from .synthetic_render import LOOKS, OF_MATERIALS, random_scene, render_touch
from .transforms import TouchTransform
from .tree import TreeWriter

__all__ = [
    "SPECS", "PROBE_DIRS", "ProbeDataset", "carve_validation", "build_tag_probe", "build_feel", "build_of_probe",
    "load_feel_split", "HARD_MATERIALS",
]

# the folder (relative to the root) holding each probe set's own frames: without it the set is not downloaded
PROBE_DIRS = {"tag_material": "TAG", "tag_roughness": "TAG", "tag_hardness": "TAG", "feel": "feel",
              "of1": "obj1.0", "of2": "obj2.0"}
HARD_MATERIALS = frozenset({7, 8, 9, 11, 13})  # TAG material ids with hardness label 1
# (docs/original/probes.md#probe-datasets)
TOUCH_JITTER = (0.4, 0.4, 0.5, 0.3)  # touch-train (docs/original/data.md#transforms)
OF1_JITTER = (0.1, 0.1, 0.1, 0.1)
Item = Tuple[Tuple[str, ...], int]  # (image paths, label); two paths for a Feel pair


def carve_validation(items: Sequence, split: str, val_fraction: float, seed: int = 0,
                     groups: Optional[Sequence] = None) -> list:
    """Partition a training list into ``train`` / ``val`` parts with a seeded permutation of its groups.

    Args:
        items: the original training entries (any objects), in file order.
        split: ``train`` (the part left for training) or ``val``.
        val_fraction: share of the groups that go to ``val``; 0 leaves the list whole (``val`` is then an error).
        seed: permutation seed; the same (items, fraction, seed) always gives the same partition.
        groups: one hashable key per item; items with the same key land on the same side (e.g. a TAG recording
            folder or a Feel object, so near-duplicate frames do not straddle the split). Default: one per item.
    Returns:
        the selected items, in their original order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}; expected 0 <= val_fraction < 1")
    if split not in ("train", "val"):
        raise ValueError(f"split {split!r}; expected 'train' or 'val' when carving a validation set")
    if val_fraction == 0.0:
        if split == "val":
            raise ValueError("split='val' needs val_fraction > 0 (the original has no validation split)")
        return list(items)
    keys = list(range(len(items))) if groups is None else list(groups)
    if len(keys) != len(items):
        raise ValueError(f"got {len(keys)} group keys for {len(items)} items")
    unique = sorted(set(keys), key=str)
    if len(unique) < 2:
        raise ValueError(f"cannot carve a validation set out of {len(unique)} group(s); need at least 2")
    order = np.random.default_rng(seed).permutation(len(unique))
    n_val = min(len(unique) - 1, max(1, int(round(val_fraction * len(unique)))))
    val_keys = {unique[j] for j in order[:n_val]}
    return [it for it, k in zip(items, keys) if (k in val_keys) == (split == "val")]


class ProbeDataset(Dataset):
    """Index of (image paths, label) -> samples ``touch`` / ``sensor`` / ``label`` / ``source``.

    One path gives ``touch`` (3,H,W); several paths (a Feel pair) are stacked to (T,3,H,W) and transformed together,
    so every frame gets the same flips and jitter.
    """

    def __init__(self, items: List[Item], sensor: int, transform: TouchTransform, source: str):
        self.items, self.sensor, self.transform, self.source = items, int(sensor), transform, source

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        paths, label = self.items[i]
        frames = load_touch_uint8(paths, self.transform.size, self.transform.antialias)
        touch, params = self.transform.load(frames[0] if len(frames) == 1 else frames)
        return {"touch": touch, "touch_aug": params, "sensor": self.sensor, "label": label, "source": self.source}


def _check_split(split: str) -> None:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split {split!r}; expected 'train', 'val' or 'test'")


def _need_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path}", path)
    return path


def default_train(name: str, split: str) -> bool:
    """Augmentation default of a probe set: on for the training split, except OF2 (docs/original/data.md#transforms: no
    augmentation)."""
    return split == "train" and name != "of2"


# --- Touch and Go -----------------------------------------------------------------------------------------------

def read_tag_list(path: str) -> List[Tuple[str, str, int]]:
    """Read a TAG list file (lines ``folder/image,label``) -> [(folder, image, label)], label -1 lines skipped."""
    out = []
    with open_text(_need_file(path, "TAG list file"), "TAG list file") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            rel, sep, label = line.rpartition(",")
            folder, slash, image = rel.rpartition("/")
            try:
                value = int(label)
            except ValueError:
                value = None
            if not sep or not slash or not folder or not image or value is None:
                raise DataError(f"{path}:{n}: bad line {line!r}; expected 'folder/image,label' with an int label", path)
            if value != -1:
                out.append((folder, image, value))
    return out


def build_tag_probe(task: str, split: str = "train", root: str = ".", image_size: int = 224,
                    train: Optional[bool] = None, val_fraction: float = 0.0, val_seed: int = 0,
                    path: Optional[str] = None, sensor: int = 0) -> ProbeDataset:
    """Touch and Go probes: ``task`` = ``material`` (20 classes), ``roughness`` (0/1) or ``hardness`` (0/1).

    Reads ``<root>/TAG/{train,test}.txt`` (roughness: ``{train,test}_rough.txt``); image
    ``TAG/dataset/<folder>/gelsight_frame/<image>``. ``path`` (absolute or relative to ``root``) replaces
    ``<root>/TAG``. The validation part is carved by recording folder.
    """
    _check_split(split)
    if task not in ("material", "roughness", "hardness"):
        raise ValueError(f"TAG probe task {task!r}; expected 'material', 'roughness' or 'hardness'")
    tag_dir = os.path.join(root, path or "TAG")
    suffix = "_rough" if task == "roughness" else ""
    entries = read_tag_list(os.path.join(tag_dir, f"{'test' if split == 'test' else 'train'}{suffix}.txt"))
    if split != "test":
        entries = carve_validation(entries, split, val_fraction, val_seed, groups=[e[0] for e in entries])
    items = []
    for folder, image, label in entries:
        if task == "hardness":
            label = int(label in HARD_MATERIALS)
        items.append(((os.path.join(tag_dir, "dataset", folder, "gelsight_frame", image),), label))
    train = default_train("tag", split) if train is None else train
    return ProbeDataset(items, sensor, TouchTransform(image_size, train=train, jitter=TOUCH_JITTER),
                        f"tag_{task}")


# --- Feel -------------------------------------------------------------------------------------------------------

def _load_object_npy(path: str):
    """``np.load(path, allow_pickle=True)`` for object arrays, but with a
    :class:`~anytouch.data.safe_pickle.NumpyOnlyUnpickler`."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        arr = NumpyOnlyUnpickler(f).load()
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        raise ValueError(f"unexpected content in {path}: expected an object array of shape {shape}")
    return arr


def load_feel_split(path: str) -> dict:
    """Read a Feel split file -> ``{"train": [object names], "test": [object names]}``.

    ``split_<k>.npy`` (the distributed file) is a *pickled* dict inside an object array. It is read with a
    restricted unpickler (NumpyOnlyUnpickler) that only rebuilds numpy arrays and plain containers, so a
    crafted file cannot run code. ``split_<k>.json`` (written by ``anytouch.data.prepare feel-split``) is plain JSON.
    """
    _need_file(path, "Feel split file")
    if path.endswith(".json"):
        with open_text(path, "Feel split file") as f:
            obj = json.load(f)
    else:
        try:
            obj = _load_object_npy(path)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
            raise DataError(f"cannot read Feel split file {path}: {e}", path) from e
        if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
            obj = obj.item()
    if not isinstance(obj, dict):
        raise DataError(f"Feel split file {path} holds a {type(obj).__name__}; expected a dict 'train'/'test'", path)
    out = {}
    for key in ("train", "test"):
        names = obj.get(key)
        if not isinstance(names, (list, tuple, np.ndarray)) or not all(isinstance(n, str) for n in names):
            raise DataError(f"Feel split file {path}: key {key!r} is {type(names).__name__}; expected a list of "
                            "object names (str)", path)
        out[key] = [str(n) for n in names]
    return out


def build_feel(split: str = "train", root: str = ".", image_size: int = 224, train: Optional[bool] = None,
               split_id: int = 3, val_fraction: float = 0.0, val_seed: int = 0, path: Optional[str] = None,
               sensor: int = 0) -> ProbeDataset:
    """Feel grasp-success probe: ``touch`` (2,3,H,W) = ``touch_during/<idx>_A.png`` then ``_B.png``, label 0/1.

    Rows of ``<root>/feel/feel.csv`` (``object_name, idx, is_gripping``) whose object is in the ``split_id``-th split
    file's list (``split_<k>.npy``, else ``split_<k>.json``). ``path`` (absolute or relative to ``root``) replaces
    ``<root>/feel``. The validation part is carved by object, like the train/test split.
    """
    _check_split(split)
    feel_dir = os.path.join(root, path or "feel")
    split_path = os.path.join(feel_dir, f"split_{split_id}.npy")
    if not os.path.isfile(split_path) and os.path.isfile(split_path[:-4] + ".json"):
        split_path = split_path[:-4] + ".json"
    objects = set(load_feel_split(split_path)["test" if split == "test" else "train"])
    csv_path = _need_file(os.path.join(feel_dir, "feel.csv"), "Feel index file")
    rows = []
    with open_text(csv_path, "Feel index file", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            try:
                name, idx, grip = row[0], int(row[1]), int(row[2])
            except (IndexError, ValueError):
                raise DataError(f"{csv_path}:{n}: bad row {row!r}; expected 'object_name,idx,is_gripping' with "
                                "int idx and 0/1", csv_path) from None
            if grip not in (0, 1):
                raise DataError(f"{csv_path}:{n}: is_gripping={grip}; expected 0 or 1", csv_path)
            if name in objects:
                rows.append((name, idx, grip))
    if split != "test":
        rows = carve_validation(rows, split, val_fraction, val_seed, groups=[r[0] for r in rows])
    items = [((os.path.join(feel_dir, name, "touch_during", f"{idx}_A.png"),
               os.path.join(feel_dir, name, "touch_during", f"{idx}_B.png")), grip) for name, idx, grip in rows]
    train = default_train("feel", split) if train is None else train
    return ProbeDataset(items, sensor, TouchTransform(image_size, train=train, jitter=TOUCH_JITTER, antialias=True),
                        "feel")


# --- ObjectFolder 1.0 / 2.0 -------------------------------------------------------------------------------------

def _load_json(path: str, what: str):
    try:
        with open_text(_need_file(path, what), what) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} {path} is not valid JSON: {e}", path) from e


def build_of_probe(version: int, split: str = "train", root: str = ".", image_size: int = 224,
                   train: Optional[bool] = None, val_fraction: float = 0.0, val_seed: int = 0,
                   path: Optional[str] = None, sensor: int = -1) -> ProbeDataset:
    """ObjectFolder probes, 7 classes: ``version`` 1 (object ids <= 100, ``obj1.0/<id>/<png>.png``) or 2 (ids > 100,
    ``obj2.0/touch/<id>/<png>.png``).

    Pairs from ``obj2.0/split.json`` (``{"train"|"test": [[item_id, png_id], ...]}``), labels from
    ``obj2.0/label.json`` (``{item_id: 0..6}``). ``path`` (absolute or relative to ``root``) is the folder holding
    ``obj1.0`` and ``obj2.0``. ``sensor`` defaults to -1 (universal), as the original probe scripts; the original
    OF2 loader's id 5 is an untrained slot (docs/original/defects.md#21-of2-untrained-sensor-slot). ``train=True`` on
    OF2 gives flips + jitter 0.1.
    """
    _check_split(split)
    if version not in (1, 2):
        raise ValueError(f"ObjectFolder probe version {version!r}; expected 1 or 2")
    base = os.path.join(root, path) if path else root
    split_path, label_path = os.path.join(base, "obj2.0", "split.json"), os.path.join(base, "obj2.0", "label.json")
    splits, labels = _load_json(split_path, "ObjectFolder split file"), _load_json(label_path, "ObjectFolder labels")
    key = "test" if split == "test" else "train"
    if not isinstance(splits, dict) or not isinstance(splits.get(key), list):
        raise DataError(f"{split_path}: expected a dict with a list under {key!r}", split_path)
    if not isinstance(labels, dict):
        raise DataError(f"{label_path}: expected a dict {{item_id: class}}", label_path)
    items = []
    for n, entry in enumerate(splits[key]):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise DataError(f"{split_path}: {key}[{n}] = {entry!r}; expected [item_id, png_id]", split_path)
        item, png = str(entry[0]), str(entry[1])
        try:
            keep = (int(item) <= 100) == (version == 1)
        except ValueError:
            raise DataError(f"{split_path}: {key}[{n}] item id {item!r} is not an integer", split_path) from None
        if not keep:
            continue
        label = labels.get(item)
        if not isinstance(label, int) or not 0 <= label < 7:
            raise DataError(f"{label_path}: label of item {item!r} is {label!r}; expected an int in 0..6", label_path)
        folder = os.path.join(base, "obj1.0", item) if version == 1 else os.path.join(base, "obj2.0", "touch", item)
        items.append(((os.path.join(folder, f"{png}.png"),), label))
    if split != "test":
        items = carve_validation(items, split, val_fraction, val_seed)
    name = f"of{version}"
    train = default_train(name, split) if train is None else train
    return ProbeDataset(items, sensor, TouchTransform(image_size, train=train, jitter=OF1_JITTER), name)


def write_of_tree(w: TreeWriter) -> None:
    """Synthetic ObjectFolder 1.0 / 2.0 renderings with ``obj2.0/split.json`` and ``label.json``."""
    split, labels = {"train": [], "test": []}, {}
    for item in list(range(1, w.sequences + 2)) + list(range(101, w.sequences + 102)):
        rng = w.rng("of", item)
        c = int(rng.integers(len(OF_MATERIALS)))
        labels[str(item)] = c
        for png in range(w.frames):
            frame = render_touch(random_scene(rng, OF_MATERIALS[c]), LOOKS[-1], w.size, rng, [1.0])[0]
            rel = f"obj1.0/{item}/{png}.png" if item <= 100 else f"obj2.0/touch/{item}/{png}.png"
            w.image(rel, frame)
            split["test" if png == w.frames - 1 else "train"].append([str(item), png])
    os.makedirs(os.path.join(w.root, "obj2.0"), exist_ok=True)
    for name, obj in (("split.json", split), ("label.json", labels)):
        with open(os.path.join(w.root, "obj2.0", name), "w", encoding="utf-8") as f:
            json.dump(obj, f)


def _tag_spec(task: str) -> DatasetSpec:
    return DatasetSpec(f"tag_{task}", "probe", partial(build_tag_probe, task), dirs=(PROBE_DIRS["tag_material"],),
                       sensors=(0,), index_files=tuple(f"TAG/{s}{'_rough' if task == 'roughness' else ''}.txt"
                                                       for s in ("train", "test")),
                       synthetic=ProbeTwin(f"tag_{task}"))


def _of_spec(version: int) -> DatasetSpec:
    return DatasetSpec(f"of{version}", "probe", partial(build_of_probe, version), dirs=(PROBE_DIRS[f"of{version}"],),
                       sensors=(-1,), index_files=("obj2.0/split.json", "obj2.0/label.json"),
                       synthetic=ProbeTwin("objectfolder"), tree=("objectfolder", write_of_tree))


SPECS = (_tag_spec("material"), _tag_spec("roughness"), _tag_spec("hardness"), _of_spec(1), _of_spec(2))
