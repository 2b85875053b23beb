"""Turn raw dataset downloads into the on-disk layout the AnyTouch loaders read (spec 4.3, 4.6; datasets.md).

The original repository ships no preparation code except ``feel_data.py`` (spec 4.6); its index CSVs come from a
side channel (the TacQuad Hugging Face repository). This module makes what can be made from the raw data:

* ``tag``: ``dataset/<folder>/{gelsight,video}.mp4`` -> ``TAG/dataset/<folder>/{gelsight,video}_frame/%010d.jpg``,
  and the TAG list files (``label.txt``, ``train.txt`` ...) copied next to it.
* ``cloth``: ``Data/<cloth>/<trial>/GelSight_video.mp4`` -> ``yuan18/Data_ICRA18/Data/<cloth>/<trial>/
  gelsight_frame/%04d.png`` and ``contact_yuan.csv``.
* ``octopi``: ``<object>_<n>.mov`` -> ``octopi/processed/<object>_<n>/%010d.jpg`` and ``contact_octopi.csv``.
* ``feel``: ``calandra_corl2017_<kkk>.h5`` -> ``feel/<object>/{vision,touch}_{before,during,after}/<n>[_A|_B].png``
  and ``feel.csv``, like ``feel_data.py`` but with h5py instead of deepdish and RGB (not RGBA) PNGs.
* ``ycb_slide``: ``real/<object>/dataset_<k>/frames/`` copied or linked to ``YCB-Slide/real/...``.
* ``index``: ``contact_obj.csv`` (ObjectFolder Real) / ``contact_visgel.csv`` for trees already in place.

Contact index rule (ours; the original's lists were made by an undocumented process): frames are scored by the mean
absolute grey-level difference from the sequence's first frame (the unloaded gel) at 64x64. ``all`` keeps every
frame; ``diff`` keeps frames scoring at least ``max(2, 0.5 * max score)``; ``top`` keeps the top 30 % by score
(Octopi's own rule in ``process_dataset.py``). Frame numbers start at 0 (``--start-index`` changes it).

CLI: ``python -m anytouch.data.prepare <dataset> --raw DIR --root DIR [...]`` (see ``--help``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from PIL import Image
from ..progress import progress as tqdm  # quiet off a terminal

from .io import DataError

__all__ = ["extract_video", "contact_scores", "select_contact", "prepare_tag", "prepare_cloth", "prepare_octopi",
           "read_deepdish", "prepare_feel", "make_feel_split", "prepare_ycb", "write_contact_index", "main"]

TAG_LISTS = ("label.txt", "train.txt", "test.txt", "train_rough.txt", "test_rough.txt", "category_reference.txt")
RULES = ("all", "diff", "top")


def extract_video(video: str, out_dir: str, template: str, start_index: int = 0) -> int:
    """Write every frame of ``video`` to ``out_dir/template.format(start_index + k)`` (OpenCV); returns the count.

    The extension of ``template`` picks the codec (``.jpg`` quality 95, ``.png``).
    """
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise DataError(f"cannot open video {video} with OpenCV (missing, corrupt or unsupported codec)", video)
    os.makedirs(out_dir, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if template.endswith(".jpg") else []
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            path = os.path.join(out_dir, template.format(start_index + n))
            if not cv2.imwrite(path, frame, params):
                raise DataError(f"cannot write frame {path}", path)
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"video {video} has no decodable frame", video)
    return n


def contact_scores(paths: Sequence[str], size: int = 64) -> np.ndarray:
    """Mean absolute grey-level difference (0..255) of each frame from the first one, at ``size`` x ``size``: (T,)."""
    ref, out = None, []
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise DataError(f"cannot decode frame {p} for contact detection", p)
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        ref = img if ref is None else ref
        out.append(float(np.abs(img - ref).mean()))
    return np.asarray(out, dtype=np.float64)


def select_contact(scores: np.ndarray, rule: str = "diff", top_fraction: float = 0.3) -> np.ndarray:
    """Indices (sorted) of contact frames under ``rule`` (``all`` | ``diff`` | ``top``, module docstring)."""
    if rule == "all":
        return np.arange(len(scores))
    if rule == "diff":
        return np.flatnonzero(scores >= max(2.0, 0.5 * float(scores.max(initial=0.0))))
    if rule == "top":
        k = max(1, int(round(top_fraction * len(scores))))
        return np.sort(np.argsort(-scores, kind="stable")[:k])
    raise ValueError(f"contact rule {rule!r}; expected one of {RULES}")


def _write_rows(path: str, rows: List[List]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _contact_rows(folder: str, names: List[str], rel_prefix: str, rule: str) -> List[List[str]]:
    if rule == "all":
        keep = range(len(names))
    else:
        keep = select_contact(contact_scores([os.path.join(folder, n) for n in names]), rule)
    return [[f"{rel_prefix}/{names[i]}"] for i in keep]


def _videos(raw: str, pattern: str) -> List[str]:
    rx = re.compile(pattern)
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(raw) for f in files if rx.fullmatch(f))
    if not found:
        raise DataError(f"no file matching {pattern!r} under {raw}", raw)
    return found


def prepare_tag(raw: str, root: str, start_index: int = 0) -> Dict[str, int]:
    """TAG: extract ``gelsight.mp4`` / ``video.mp4`` of every ``<raw>/dataset/<folder>/`` (or ``<raw>/<folder>/``)
    to ``<root>/TAG/dataset/<folder>/{gelsight,video}_frame/%010d.jpg``; copy the list files found in ``raw``.

    Returns counts: ``folders``, ``frames``, ``lists`` and, when ``label.txt`` is present, ``label_entries`` /
    ``label_found`` (entries whose frame exists after extraction: a check of the frame numbering).
    """
    counts = {"folders": 0, "frames": 0, "lists": 0}
    out = os.path.join(root, "TAG")
    for video in tqdm(_videos(raw, r"gelsight\.mp4|video\.mp4"), desc="TAG videos", unit="video"):
        folder = os.path.basename(os.path.dirname(video))
        kind = "gelsight_frame" if os.path.basename(video) == "gelsight.mp4" else "video_frame"
        counts["frames"] += extract_video(video, os.path.join(out, "dataset", folder, kind), "{:010d}.jpg",
                                          start_index)
        counts["folders"] += kind == "gelsight_frame"
    for name in TAG_LISTS:
        candidates = (os.path.join(raw, name), os.path.join(raw, "dataset", name))
        src = next((p for p in candidates if os.path.isfile(p)), None)
        if src:
            shutil.copyfile(src, os.path.join(out, name))
            counts["lists"] += 1
    label = os.path.join(out, "label.txt")
    if os.path.isfile(label):
        with open(label, encoding="utf-8") as f:
            entries = [ln.strip().rpartition(",")[0] for ln in f if ln.strip()]
        counts["label_entries"] = len(entries)
        counts["label_found"] = sum(
            os.path.isfile(os.path.join(out, "dataset", os.path.dirname(e), "gelsight_frame", os.path.basename(e)))
            for e in entries)
    return counts


def prepare_cloth(raw: str, root: str, rule: str = "all", start_index: int = 0) -> Dict[str, int]:
    """Cloth: ``<raw>/<cloth>/<trial>/GelSight_video.mp4`` (``raw`` = the ``Data/`` folder) ->
    ``<root>/yuan18/Data_ICRA18/Data/<cloth>/<trial>/gelsight_frame/%04d.png``; index ``<root>/contact_yuan.csv``
    (paths relative to ``Data/``) with the contact ``rule``."""
    data = os.path.join(root, "yuan18", "Data_ICRA18", "Data")
    rows, frames = [], 0
    videos = _videos(raw, r"GelSight_video\.mp4")
    for video in tqdm(videos, desc="Cloth videos", unit="video"):
        rel = os.path.relpath(os.path.dirname(video), raw).replace(os.sep, "/")
        out = os.path.join(data, rel, "gelsight_frame")
        n = extract_video(video, out, "{:04d}.png", start_index)
        frames += n
        rows += _contact_rows(out, [f"{start_index + k:04d}.png" for k in range(n)], f"{rel}/gelsight_frame", rule)
    _write_rows(os.path.join(root, "contact_yuan.csv"), rows)
    return {"videos": len(videos), "frames": frames, "index_rows": len(rows)}


def prepare_octopi(raw: str, root: str, rule: str = "top", start_index: int = 0) -> Dict[str, int]:
    """Octopi: every ``<object>_<n>.mov`` under ``raw`` -> ``<root>/octopi/processed/<object>_<n>/%010d.jpg`` (all
    frames, so clips have their earlier frames); index ``<root>/contact_octopi.csv`` with rows
    ``processed/<folder>/<frame>`` (the first location every Octopi loader tries, spec 7 bug 6)."""
    rows, frames = [], 0
    videos = _videos(raw, r".+\.mov")
    for video in tqdm(videos, desc="Octopi videos", unit="video"):
        folder = os.path.splitext(os.path.basename(video))[0]
        out = os.path.join(root, "octopi", "processed", folder)
        n = extract_video(video, out, "{:010d}.jpg", start_index)
        frames += n
        rows += _contact_rows(out, [f"{start_index + k:010d}.jpg" for k in range(n)], f"processed/{folder}", rule)
    _write_rows(os.path.join(root, "contact_octopi.csv"), rows)
    return {"videos": len(videos), "frames": frames, "index_rows": len(rows)}


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
    import h5py

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
    import h5py

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
    _write_rows(os.path.join(out, "feel.csv"), rows)
    return {"files": len(files), "grasps": len(rows), "objects": len(counter)}


def make_feel_split(root: str, k: int, test_fraction: float = 0.2, seed: int = 0) -> str:
    """Write ``<root>/feel/split_<k>.json`` (``{"train": [...], "test": [...]}`` object names, seeded) for users
    without the distributed ``split_<k>.npy``; the Feel loader reads it when the ``.npy`` is absent."""
    with open(os.path.join(root, "feel", "feel.csv"), newline="", encoding="utf-8") as f:
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


def prepare_ycb(raw: str, root: str, mode: str = "copy") -> Dict[str, int]:
    """YCB-Slide: ``<raw>/real/<object>/dataset_<k>/frames/`` (or ``<raw>/<object>/...``) -> ``<root>/YCB-Slide/
    real/<object>/dataset_<k>/frames/`` by ``mode`` = ``copy`` | ``symlink`` (one link per frames folder)."""
    if mode not in ("copy", "symlink"):
        raise ValueError(f"mode {mode!r}; expected 'copy' or 'symlink'")
    src_root = os.path.join(raw, "real") if os.path.isdir(os.path.join(raw, "real")) else raw
    runs = sorted(os.path.join(src_root, o, d) for o in os.listdir(src_root) if os.path.isdir(os.path.join(src_root, o))
                  for d in os.listdir(os.path.join(src_root, o)) if re.fullmatch(r"dataset_\d+", d))
    if not runs:
        raise DataError(f"no <object>/dataset_<k>/ folder under {src_root}", src_root)
    frames = 0
    for run in tqdm(runs, desc="YCB-Slide runs", unit="run"):
        src = os.path.join(run, "frames")
        dst = os.path.join(root, "YCB-Slide", "real", os.path.relpath(src, src_root))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if mode == "symlink":
            if not os.path.lexists(dst):
                os.symlink(os.path.abspath(src), dst)
        else:
            shutil.copytree(src, dst, dirs_exist_ok=True)
        frames += len(os.listdir(src))
    return {"runs": len(runs), "frames": frames}


INDEX_TARGETS = {  # dataset -> (frames root under <root>, frame-name regex, index file under <root>)
    "of_real": ("objectfolder/real/tactile", r"\d+\.png", "contact_obj.csv"),
    "visgel": ("visgel/images/touch", r"frame\d{4}\.jpg", "contact_visgel.csv"),
}


def write_contact_index(name: str, root: str, rule: str = "diff") -> Dict[str, int]:
    """Derive ``<root>/contact_obj.csv`` (``of_real``) or ``<root>/contact_visgel.csv`` (``visgel``) from the frame
    folders already under the dataset's root: every folder of frames is one sequence, scored by ``rule``."""
    if name not in INDEX_TARGETS:
        raise ValueError(f"no contact index rule for {name!r}; expected one of {sorted(INDEX_TARGETS)}")
    sub, pattern, index = INDEX_TARGETS[name]
    base = os.path.join(root, sub)
    if not os.path.isdir(base):
        raise DataError(f"{name}: frames folder not found: {base}", base)
    rx = re.compile(pattern)
    seqs = []
    for d, _, files in os.walk(base):
        names = sorted((f for f in files if rx.fullmatch(f)), key=lambda f: int(re.sub(r"\D", "", f)))
        if names:
            seqs.append((d, names))
    rows = []
    for d, names in tqdm(sorted(seqs), desc=f"{name} contact index", unit="sequence"):
        rows += _contact_rows(d, names, os.path.relpath(d, base).replace(os.sep, "/"), rule)
    _write_rows(os.path.join(root, index), rows)
    return {"sequences": len(seqs), "index_rows": len(rows)}


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> Dict[str, int]:
    """CLI: ``python -m anytouch.data.prepare {tag,cloth,octopi,feel,feel-split,ycb_slide,index} ...``."""
    ap = argparse.ArgumentParser(prog=prog or "python -m anytouch.data.prepare", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=("tag", "cloth", "octopi", "feel", "feel-split", "ycb_slide", "index"))
    ap.add_argument("--raw", help="the raw download folder")
    ap.add_argument("--root", required=True, help="the data root (the original's tactile_datasets/)")
    ap.add_argument("--rule", choices=RULES, help="contact rule of the index (default: cloth all, octopi top, "
                                                  "index diff)")
    ap.add_argument("--start-index", type=int, default=0, help="number of the first extracted frame")
    ap.add_argument("--touch-only", action="store_true", help="feel: write only the touch_during A/B pair")
    ap.add_argument("--split", type=int, default=3, help="feel-split: k of split_<k>.json")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="feel-split: share of objects in test")
    ap.add_argument("--seed", type=int, default=0, help="feel-split: permutation seed")
    ap.add_argument("--mode", choices=("copy", "symlink"), default="copy", help="ycb_slide: copy or link frames")
    ap.add_argument("--name", choices=sorted(INDEX_TARGETS), help="index: which dataset's contact CSV to derive")
    a = ap.parse_args(argv)
    if a.dataset not in ("feel-split", "index") and not a.raw:
        ap.error(f"{a.dataset} needs --raw")
    if a.dataset == "tag":
        out = prepare_tag(a.raw, a.root, a.start_index)
    elif a.dataset == "cloth":
        out = prepare_cloth(a.raw, a.root, a.rule or "all", a.start_index)
    elif a.dataset == "octopi":
        out = prepare_octopi(a.raw, a.root, a.rule or "top", a.start_index)
    elif a.dataset == "feel":
        out = prepare_feel(a.raw, a.root, touch_only=a.touch_only)
    elif a.dataset == "feel-split":
        out = {"written": make_feel_split(a.root, a.split, a.test_fraction, a.seed)}
    elif a.dataset == "ycb_slide":
        out = prepare_ycb(a.raw, a.root, a.mode)
    else:
        if not a.name:
            ap.error("index needs --name")
        out = write_contact_index(a.name, a.root, a.rule or "diff")
    print(f"{a.dataset}: " + ", ".join(f"{k} {v}" for k, v in out.items()))
    return out


if __name__ == "__main__":
    main()
