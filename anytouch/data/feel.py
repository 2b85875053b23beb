"""The Feeling of Success (Calandra et al. CoRL 2017): the ``feel`` probe set's preparation and declaration.

The loader (:func:`anytouch.data.probe_sets.build_feel`) reads ``<root>/feel/feel.csv`` and the split file; ``prepare
feel`` writes them from the release's ``calandra_corl2017_<kkk>.h5`` files, like the original's ``feel_data.py`` but
with h5py instead of deepdish and RGB (not RGBA) PNGs.
"""
from __future__ import annotations

import csv
import json
import os
import re
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image
from ..progress import progress as tqdm  # quiet off a terminal

from .extract import write_rows
from .io import DataError, open_text
from .probe_sets import PROBE_DIRS, build_feel
from .spec import DatasetSpec, ProbeTwin
from .synthetic_render import render_grasp
from .tree import TreeWriter

__all__ = ["SPEC", "prepare_feel", "make_feel_split", "read_deepdish"]


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.item() if value.shape == () else value.tobytes().rstrip(b"\0")
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


def _flag(value, where: str) -> int:
    """A 0/1 flag stored as a bool / int (numpy or not, possibly a 1-element array) or as text ("True", "0" ...)."""
    v = np.asarray(value)
    if v.size == 1 and v.dtype.kind in "biuf":
        return int(bool(v.reshape(()).item()))
    text = _text(value).strip().lower()
    if text in ("true", "1", "false", "0"):
        return int(text in ("true", "1"))
    raise DataError(f"{where}: is_gripping = {value!r}; expected a boolean or 0/1")


_HDF5_META = {"CLASS", "TITLE", "VERSION", "PYTABLES_FORMAT_VERSION", "DEEPDISH_IO_VERSION", "DEEPDISH_IO_UNPACK"}


def read_deepdish(node):
    """Read an HDF5 group written by ``deepdish.io.save`` with h5py -> nested dicts / lists / numpy arrays.

    deepdish stores a list (tuple) as a group titled ``list`` (``tuple``) with children ``i0, i1, ...``; a dict as a
    group whose children (arrays, groups) and attributes (scalars, bytes, strings) are its items; the top-level
    object of a non-dict save under ``data`` with the root attribute ``DEEPDISH_IO_UNPACK``. Objects deepdish had to
    pickle (e.g. lists of 256 items or more) raise DataError: reading them would mean unpickling untrusted data.
    """
    import h5py  # optional dependency (the "prepare" extra)

    if isinstance(node, h5py.Dataset):
        if _text(node.attrs.get("PSEUDOATOM", b"")) == "object":
            raise DataError(f"{node.file.filename}: {node.name} was pickled by deepdish; it cannot be read without "
                            "unpickling, which this reader does not do", node.file.filename)
        return node[()]
    if node.name == "/" and node.attrs.get("DEEPDISH_IO_UNPACK") and "data" in node:
        return read_deepdish(node["data"])
    title = _text(node.attrs.get("TITLE", b""))
    items = {k: read_deepdish(v) for k, v in node.items()}
    items.update({k: v for k, v in node.attrs.items() if k not in _HDF5_META})
    if title.startswith(("list", "tuple")):
        keys = sorted(items, key=lambda k: int(k[1:]) if re.fullmatch(r"i\d+", k) else -1)
        return [items[k] for k in keys if re.fullmatch(r"i\d+", k)]
    return items


# (folder prefix, deepdish key template, file suffix) of the images feel_data.py writes per grasp and phase
FEEL_IMAGES = (("vision", "kinectA_rgb_{}", ""), ("touch", "gelsightA_{}", "_A"), ("touch", "gelsightB_{}", "_B"))


def _rgb_png(array, path: str) -> None:
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    Image.fromarray(np.ascontiguousarray(a[..., :3])).convert("RGB").save(path)


def prepare_feel(raw: str, root: str, files: Optional[Sequence[str]] = None,
                 touch_only: bool = False) -> Dict[str, int]:
    """Feel: every ``calandra_corl2017_<kkk>.h5`` in ``raw`` (k = 000..039, missing files skipped as
    ``feel_data.py``) -> ``<root>/feel/<object>/{vision,touch}_{before,during,after}/<n>.png`` / ``<n>_A.png`` /
    ``<n>_B.png`` (n numbered per object from 0) and ``<root>/feel/feel.csv`` rows ``object, n, is_gripping``.

    ``touch_only`` writes only the ``touch_during`` pair the probe reads. A grasp record lacking a key raises
    DataError naming the file, record and key.
    """
    import h5py  # optional dependency (the "prepare" extra)

    files = files if files is not None else [os.path.join(raw, f"calandra_corl2017_{k:03d}.h5") for k in range(40)]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise DataError(f"no calandra_corl2017_<kkk>.h5 file found in {raw}", raw)
    out = os.path.join(root, "feel")
    phases = ("during",) if touch_only else ("before", "during", "after")
    images = [(folder, key.format(p), suffix, p) for folder, key, suffix in FEEL_IMAGES for p in phases
              if not (touch_only and folder == "vision")]
    counter: Dict[str, int] = {}
    rows = []
    for path in tqdm(files, desc="Feel files", unit="file"):
        with h5py.File(path, "r") as f:
            records = read_deepdish(f)
        for r, rec in enumerate([records] if isinstance(records, dict) else records):
            missing = [k for k in ["object_name", "is_gripping"] + [im[1] for im in images] if k not in rec]
            if missing:
                raise DataError(f"{path}: record {r} lacks key(s) {missing}; expected a Feel grasp dict", path)
            name = _text(rec["object_name"])
            n = counter.get(name, 0)
            counter[name] = n + 1
            for folder, key, suffix, phase in images:
                target = os.path.join(out, name, f"{folder}_{phase}")
                os.makedirs(target, exist_ok=True)
                _rgb_png(rec[key], os.path.join(target, f"{n}{suffix}.png"))
            rows.append([name, n, _flag(rec["is_gripping"], f"{path}: record {r}")])
    write_rows(os.path.join(out, "feel.csv"), rows)
    return {"files": len(files), "grasps": len(rows), "objects": len(counter)}


def make_feel_split(root: str, k: int, test_fraction: float = 0.2, seed: int = 0) -> str:
    """Write ``<root>/feel/split_<k>.json`` (``{"train": [...], "test": [...]}`` object names, seeded) for users
    without the distributed ``split_<k>.npy``; the Feel loader reads it when the ``.npy`` is absent."""
    with open_text(os.path.join(root, "feel", "feel.csv"), "Feel index", newline="") as f:
        objects = sorted({row[0] for row in csv.reader(f) if row})
    if len(objects) < 2:
        raise DataError(f"{root}/feel/feel.csv lists {len(objects)} object(s); need at least 2 to split")
    order = np.random.default_rng(seed).permutation(len(objects))
    n_test = min(len(objects) - 1, max(1, int(round(test_fraction * len(objects)))))
    test = sorted(objects[i] for i in order[:n_test])
    path = os.path.join(root, "feel", f"split_{k}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"train": [o for o in objects if o not in test], "test": test}, f, indent=1)
    return path


def write_tree(w: TreeWriter) -> None:
    """Synthetic Feel: A/B GelSight pairs of successful and failed grasps, ``feel.csv`` and ``split_3.npy``."""
    rows, objects = [], [f"object_{k}" for k in range(max(2, w.sequences))]
    for k, name in enumerate(objects):
        for n in range(w.frames):
            rng = w.rng("feel", k, n)
            success = bool(rng.integers(2))
            pair = render_grasp(rng, success, w.size)
            w.image(f"feel/{name}/touch_during/{n}_A.png", pair[0])
            w.image(f"feel/{name}/touch_during/{n}_B.png", pair[1])
            rows.append([name, n, int(success)])
    w.lines("feel/feel.csv", rows)
    split = {"train": objects[:-1], "test": objects[-1:]}
    np.save(os.path.join(w.root, "feel", "split_3.npy"), np.array(split, dtype=object), allow_pickle=True)


SPEC = DatasetSpec(
    "feel", "probe", build_feel, dirs=(PROBE_DIRS["feel"],), sensors=(0,),
    index_files=("feel/feel.csv", "feel/split_<k>.npy"), synthetic=ProbeTwin("feel"), tree=("feel", write_tree),
    prepare=prepare_feel, prepare_options=("touch_only",))
