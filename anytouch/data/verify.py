"""Check a data root before training: per dataset, how many samples the loaders find, which referenced files are
missing and which do not decode (docs/original/data.md#per-dataset-layout,
docs/original/probes.md#probe-datasets).

Pre-training sources are opened as the stage-1 and stage-2 image loaders would open them (their index files,
frames, camera frames and text files); index entries the loaders drop because a file is missing are counted from the
loaders' own statistics. Probe sets are opened for their train and test splits, bench task sets for train, val
and test (pickles, JSON files and frames they read are then checked). Every referenced file is then read
with the loaders' reader (:func:`anytouch.data.io.read_image`, :func:`anytouch.data.text.load_text_file`); ``sample``
limits that to a seeded random subset.

A dataset is ``absent`` only when its folder is missing from the root; a missing or malformed index file inside an
existing folder is one of its ``problems``. The CLI exits with status 1 on problems or when no dataset is found, and
2 when the root itself does not exist.

CLI: ``python -m anytouch.data.verify --root DIR [--names tag,feel] [--sample 1000]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
from ..progress import progress as tqdm  # quiet off a terminal

from .build import build_dataset
from .io import DataError, read_image
from .packed import packed_stores, verify_packed
from . import registry
from .safe_pickle import load_pickle
from .text import load_text_file

__all__ = ["dataset_dirs", "verify", "format_rows", "main"]

_SKIPPED_ON_PURPOSE = "clip frames"  # stats key of entries dropped for lack of earlier clip frames (t < 3): normal


def _pretrain_files(name: str, root: str, row: Dict) -> Set[str]:
    files: Set[str] = set()
    errors = []
    for stage in (1, 2):
        try:
            ds = build_dataset(name, root=root, clip="image", stage=stage, image_size=32, vision_size=32)
        except DataError as e:
            errors.append(e)
            row["notes"].append(f"stage {stage}: {e}")
            continue
        row["samples"] = max(row["samples"], len(ds))
        row["missing"] += sum(n for k, n in ds.stats.items() if not k.startswith(_SKIPPED_ON_PURPOSE))
        if ds.stats:
            row["notes"].append(f"stage {stage}: {ds.describe_stats()}")
        for i in range(len(ds)):
            e = ds.entry(i)
            files.update(e["frames"])
            files.update(p for p in (e["vision"], e["text"]) if p)
    if len(errors) == 2:
        raise errors[0]
    row["broken"] = bool(errors)
    return files


def _probe_files(name: str, root: str, row: Dict) -> Set[str]:
    files: Set[str] = set()
    for split in ("train", "test"):
        ds = build_dataset(name, split, root=root, image_size=32)
        row["samples"] += len(ds)
        files.update(p for paths, _ in ds.items for p in paths)
    missing = sorted(p for p in files if not os.path.isfile(p))
    row["missing"] += len(missing)
    if missing:
        row["notes"].append(f"missing e.g. {missing[0]}")
    return {p for p in files if os.path.isfile(p)}


def _bench_files(name: str, root: str, row: Dict) -> Set[str]:
    files: Set[str] = set()
    for split in ("train", "val", "test"):
        ds = build_dataset(name, split, root=root)
        row["samples"] += len(ds)
        files.update(ds.files())
    missing = sorted(p for p in files if not os.path.isfile(p))
    row["missing"] += len(missing)
    if missing:
        row["notes"].append(f"missing e.g. {missing[0]}")
    return {p for p in files if os.path.isfile(p)}


def dataset_dirs(name: str) -> Sequence[str]:
    """The folders (relative to the data root) where dataset ``name`` may live (its ``DatasetSpec.dirs``); it is
    absent if none exists."""
    return registry.get(name).dirs


def _check(path: str) -> None:
    if path.endswith(".pt"):
        load_text_file(path)
    elif path.endswith(".pkl"):
        load_pickle(path, "pickle file")
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                json.load(f)
            except json.JSONDecodeError as e:
                raise DataError(f"{path} is not valid JSON: {e}", path) from e
    else:
        read_image(path)


def verify(root: str, names: Optional[Sequence[str]] = None, sample: Optional[int] = None, seed: int = 0,
           progress: bool = True) -> List[Dict]:
    """Check the registered datasets ``names`` (default all) under ``root``: pre-training sources as their loaders
    open them, probe sets by split, bench sets by split (train, val, test) (``DatasetSpec.kind``).

    Args:
        sample: decode at most this many referenced files per dataset (seeded random subset); None = all.
    Returns:
        one dict per dataset: ``name``, ``status`` (``ok`` | ``problems`` | ``absent``), ``samples`` (train + test
        for probe sets), ``files`` (distinct existing files referenced), ``checked`` (files decoded), ``missing``
        (pre-training: index entries the stage-1 and stage-2 loaders drop for a missing frame, camera or text file,
        summed over both; probe sets: distinct missing files), ``unreadable`` (files that fail to decode), ``notes``.
        ``absent``: none of the dataset's folders (:func:`dataset_dirs`) exists under ``root``. Once its folder
        exists, anything that stops a loader (a missing or malformed index file, ...) is ``problems``, with the
        loader's message in ``notes``; so is a source whose stage-1 loader opens but whose stage-2 loader does not
        (e.g. no text folder).
    Raises:
        DataError: ``root`` is not a folder.
    """
    registered = registry.names()
    names = list(registered if names is None else names)
    unknown = sorted(set(names) - set(registered))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; expected among {', '.join(registered)}")
    if not os.path.isdir(root):
        raise DataError(f"data root not found: {os.path.abspath(root)} (expected a folder laid out like "
                        f"tactile_datasets/, see datasets/<name>/README.md)", root)
    rows = []
    for name in names:
        row = {"name": name, "status": "ok", "samples": 0, "files": 0, "checked": 0, "missing": 0, "unreadable": 0,
               "notes": []}
        dirs = [os.path.join(root, d) for d in dataset_dirs(name)]
        if not any(os.path.isdir(d) for d in dirs):
            row.update(status="absent", notes=[f"folder not found: {' or '.join(dirs)}"])
            rows.append(_finish(row))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the loaders warn about missing files; they are counted instead
                kind = registry.get(name).kind
                reader = {"pretrain": _pretrain_files, "probe": _probe_files, "bench": _bench_files}[kind]
                files = reader(name, root, row)
        except (DataError, OSError) as e:
            row["status"] = "problems"
            if not any(str(e) in n for n in row["notes"]):  # pre-training notes already hold each stage's error
                row["notes"].append(str(e))
            rows.append(_finish(row))
            continue
        todo = sorted(files)
        row["files"] = len(todo)
        if sample is not None and len(todo) > sample:
            todo = [todo[i] for i in sorted(np.random.default_rng(seed).choice(len(todo), sample, replace=False))]
        bad = []
        for path in tqdm(todo, desc=f"verify {name}", unit="file", disable=not progress, leave=False):
            try:
                _check(path)
            except DataError as e:
                bad.append(str(e))
        row["checked"], row["unreadable"] = len(todo), len(bad)
        if bad:
            row["notes"].append(f"unreadable e.g. {bad[0]}")
        if row["missing"] or row["unreadable"] or row.pop("broken", False):
            row["status"] = "problems"
        rows.append(_finish(row))
    return rows


def _finish(row: Dict) -> Dict:
    row["notes"] = "; ".join(row["notes"])
    return row


def format_rows(rows: List[Dict]) -> str:
    """The table :func:`main` prints (one line per dataset, then the notes of datasets with problems)."""
    head = f"{'dataset':<14}{'status':<10}{'samples':>9}{'files':>9}{'checked':>9}{'missing':>9}{'unreadable':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<14}{r['status']:<10}{r['samples']:>9}{r['files']:>9}{r['checked']:>9}"
                     f"{r['missing']:>9}{r['unreadable']:>11}")
    lines += [f"  {r['name']}: {r['notes']}" for r in rows if r["notes"] and r["status"] != "ok"]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> List[Dict]:
    """CLI entry point; exits with status 1 if any checked dataset has problems or none is found, 2 if ``--root``
    is not a folder."""
    ap = argparse.ArgumentParser(prog=prog or "python -m anytouch.data.verify",
                                 description="Per dataset: samples found, missing and unreadable files.")
    ap.add_argument("--root", help="the data root (the original's tactile_datasets/)")
    ap.add_argument("--packed", help="instead: check the packed stores under this folder (sizes and sha256)")
    ap.add_argument("--names", help=f"comma-separated subset of: {','.join(registry.names())}")
    ap.add_argument("--sample", type=int, help="decode at most this many files per dataset")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --sample subset")
    a = ap.parse_args(argv)
    if a.packed:
        return _verify_packed(a.packed)
    if not a.root:
        ap.error("give --root (a data tree) or --packed (a folder of packed stores)")
    try:
        rows = verify(a.root, a.names.split(",") if a.names else None, a.sample, a.seed)
    except DataError as e:  # the root is not a folder
        ap.error(f"--root: {e}")
    print(format_rows(rows))
    if all(r["status"] == "absent" for r in rows):  # most likely a wrong --root
        print(f"no dataset found under {os.path.abspath(a.root)}; expected the layout of datasets/<name>/README.md",
              file=sys.stderr)
        raise SystemExit(1)
    if any(r["status"] == "problems" for r in rows):
        raise SystemExit(1)
    return rows


def _verify_packed(folder: str) -> List[Dict]:
    """``--packed``: every store under ``folder`` checked; exit status 1 on the first bad one or when none is found."""
    stores = packed_stores(folder) if os.path.isdir(folder) else []
    if not stores:
        print(f"no packed store (a folder with index.json) under {os.path.abspath(folder)}; write them with "
              f"anytouch pack", file=sys.stderr)
        raise SystemExit(1)
    rows = []
    for store in stores:
        try:
            index = verify_packed(store)
        except DataError as e:
            print(f"{store}: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        rows.append({"store": store, "frames": index["frames"], "tables": {k: t["samples"] for k, t in
                                                                          index["tables"].items()}})
        print(f"{store}: ok, {index['frames']} frames, " + ", ".join(f"{n} {k}" for k, n in rows[-1]["tables"].items()))
    return rows


if __name__ == "__main__":
    main()
