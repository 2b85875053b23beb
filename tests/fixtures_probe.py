"""Tiny on-disk trees of the probe datasets in the original layout (docs/original/probes.md#probe-datasets), and tiny
raw inputs for ``anytouch.data.prepare`` (an mp4/mov made with cv2.VideoWriter, an h5 file shaped like deepdish's
output).

Frames are constant images encoding (frame number, tag) as in tests/fixtures_data.py (``decode_frames`` inverts
the evaluation transform), so tests can tell exactly which file a sample read.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from fixtures_data import write_frame

__all__ = ["TAG_TRAIN", "TAG_TEST", "TAG_ROUGH_TRAIN", "make_tag_probe", "FEEL_ROWS", "FEEL_SPLIT", "make_feel",
           "OF_SPLIT", "OF_LABELS", "make_of", "write_video", "write_feel_h5"]

# (folder, frame number, material label) of TAG/train.txt and test.txt; label -1 lines are skipped by the loader
TAG_TRAIN = [("20190101_000000", 1, 7), ("20190101_000000", 2, 7), ("20190101_000000", 3, -1),
             ("20190102_000000", 4, 3), ("20190102_000000", 5, 13), ("20190103_000000", 6, 0),
             ("20190103_000000", 7, 9), ("20190104_000000", 8, 19)]
TAG_TEST = [("20190105_000000", 9, 11), ("20190105_000000", 10, -1), ("20190105_000000", 11, 2)]
TAG_ROUGH_TRAIN = [("20190101_000000", 1, 1), ("20190102_000000", 4, 0), ("20190103_000000", 6, 1)]
TAG_ROUGH_TEST = [("20190105_000000", 9, 0)]


def _lines(path: str, rows: Sequence[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")


def make_tag_probe(root: str) -> str:
    """``TAG/dataset/<folder>/gelsight_frame/%010d.jpg`` (tag 1) and the four probe list files."""
    for folder, t, _ in TAG_TRAIN + TAG_TEST:
        write_frame(os.path.join(root, "TAG", "dataset", folder, "gelsight_frame", f"{t:010d}.jpg"), t, 1)
    for name, rows in (("train.txt", TAG_TRAIN), ("test.txt", TAG_TEST), ("train_rough.txt", TAG_ROUGH_TRAIN),
                       ("test_rough.txt", TAG_ROUGH_TEST)):
        _lines(os.path.join(root, "TAG", name), [f"{folder}/{t:010d}.jpg,{label}" for folder, t, label in rows])
    return root


# feel.csv rows (object, idx, is_gripping); frame A has tag 1, B tag 2, frame number = idx (object "twin": A == B)
FEEL_ROWS = [("mug", 0, 1), ("mug", 1, 0), ("ball", 0, 0), ("ball", 1, 1), ("ball", 2, 1), ("twin", 0, 1),
             ("can", 0, 1)]
FEEL_SPLIT = {"train": ["mug", "ball", "twin"], "test": ["can"]}


def make_feel(root: str, split: Dict = None, k: int = 3) -> str:
    """``feel/<object>/touch_during/<idx>_{A,B}.png``, ``feel/feel.csv`` and ``feel/split_<k>.npy`` (a pickled dict,
    like the distributed file)."""
    for name, idx, _ in FEEL_ROWS:
        folder = os.path.join(root, "feel", name, "touch_during")
        write_frame(os.path.join(folder, f"{idx}_A.png"), idx, 1)
        write_frame(os.path.join(folder, f"{idx}_B.png"), idx, 1 if name == "twin" else 2)
    _lines(os.path.join(root, "feel", "feel.csv"), [f"{n},{i},{g}" for n, i, g in FEEL_ROWS])
    np.save(os.path.join(root, "feel", f"split_{k}.npy"), np.array(split or FEEL_SPLIT, dtype=object))
    return root


# ObjectFolder: [item_id, png_id] pairs; ids <= 100 are OF 1.0, > 100 OF 2.0; frame tag = label, number = png id
OF_SPLIT = {"train": [["3", 0], ["3", 1], ["100", 2], ["101", 3], ["250", 4]],
            "test": [["7", 5], ["180", 6]]}
OF_LABELS = {"3": 0, "7": 6, "100": 2, "101": 4, "180": 5, "250": 1}


def make_of(root: str) -> str:
    """``obj1.0/<id>/<png>.png``, ``obj2.0/touch/<id>/<png>.png``, ``obj2.0/split.json`` and ``obj2.0/label.json``."""
    for item, png in OF_SPLIT["train"] + OF_SPLIT["test"]:
        folder = os.path.join(root, "obj1.0", item) if int(item) <= 100 else os.path.join(root, "obj2.0", "touch", item)
        write_frame(os.path.join(folder, f"{png}.png"), png, OF_LABELS[item])
    for name, obj in (("split.json", OF_SPLIT), ("label.json", OF_LABELS)):
        with open(os.path.join(root, "obj2.0", name), "w") as f:
            json.dump(obj, f)
    return root


def write_video(path: str, levels: Sequence[int], size: Tuple[int, int] = (48, 32), fps: int = 10) -> str:
    """A video whose frame k is a constant grey image of level ``levels[k]`` (mp4v codec; .mp4 or .mov)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert out.isOpened(), f"cv2.VideoWriter cannot write {path}"
    for v in levels:
        out.write(np.full((h, w, 3), v, np.uint8))
    out.release()
    return path


def _attr_str(value: str) -> np.bytes_:
    return np.bytes_(value.encode())


def write_feel_h5(path: str, grasps: List[Dict]) -> str:
    """An HDF5 file laid out like ``deepdish.io.save(path, grasps)``: root attribute ``DEEPDISH_IO_UNPACK``, group
    ``/data`` titled ``list:N`` with children ``i0, i1, ...`` titled ``dict:K``; arrays are datasets, scalars and
    bytes are attributes (``object_name`` as bytes, like the original files)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["DEEPDISH_IO_VERSION"] = 12
        f.attrs["DEEPDISH_IO_UNPACK"] = True
        data = f.create_group("data")
        data.attrs["TITLE"] = _attr_str(f"list:{len(grasps)}")
        data.attrs["CLASS"] = _attr_str("GROUP")
        for i, g in enumerate(grasps):
            grp = data.create_group(f"i{i}")
            grp.attrs["TITLE"] = _attr_str(f"dict:{len(g)}")
            for key, value in g.items():
                if isinstance(value, np.ndarray):
                    grp.create_dataset(key, data=value)
                else:
                    grp.attrs[key] = value
    return path
