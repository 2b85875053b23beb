"""Turn raw dataset downloads into the on-disk layout the AnyTouch loaders read
(docs/original/data.md#per-dataset-layout, docs/original/probes.md#probe-datasets; datasets.md).

The original repository ships no preparation code except ``feel_data.py`` (docs/original/probes.md#probe-datasets); its
index CSVs come from a side channel (the TacQuad Hugging Face repository). Each dataset that can be made from its raw
release declares its step in its spec (``DatasetSpec.prepare``, next to its loader); this module is the command line
over them:

* ``tag``: ``dataset/<folder>/{gelsight,video}.mp4`` -> ``TAG/dataset/<folder>/{gelsight,video}_frame/%010d.jpg``,
  and the TAG list files (``label.txt``, ``train.txt`` ...) found in the download or the Touch-and-Go repository.
* ``cloth``: ``Data/<cloth>/<trial>/GelSight_video.mp4`` -> ``yuan18/Data_ICRA18/Data/<cloth>/<trial>/
  gelsight_frame/%04d.png`` (from ``0001.png``, as the release) and ``contact_yuan.csv``.
* ``octopi``: ``<object>_<n>.mov`` -> ``octopi/processed/physiclear_<object>_<k>/%010d.jpg`` (Octopi's own frame
  selection) and ``contact_octopi.csv``.
* ``feel``: ``calandra_corl2017_<kkk>.h5`` -> ``feel/<object>/{vision,touch}_{before,during,after}/<n>[_A|_B].png``
  and ``feel.csv``; ``feel-split`` writes a seeded ``split_<k>.json``.
* ``ycb_slide``: ``real/<object>/dataset_<k>/frames/`` copied or linked to ``YCB-Slide/real/...``.
* ``force`` / ``slip`` (one release for both), ``pose``: a Sparsh force / pose download copied or linked to
  ``<sensor>-force-estimation/`` / ``digit-pose-estimation/``; ``cloth_textile``: the Cloth metadata and split
  files (AnyTouch 2's ``data/`` folder) next to the Cloth frames, or a seeded garment split written there.
* ``index --name <dataset>``: a contact index for a tree already in place (datasets declaring
  ``DatasetSpec.contact_index``: ObjectFolder Real, VisGel), by a contact rule of :mod:`anytouch.data.extract`.

CLI: ``python -m anytouch.data.prepare <dataset> --raw DIR --root DIR [...]`` (see ``--help``).
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Dict, Optional, Sequence

from ..progress import progress as tqdm  # quiet off a terminal

from .cloth import prepare_cloth
from .extract import RULES, contact_rows, contact_scores, extract_video, select_contact, write_rows
from .feel import make_feel_split, prepare_feel, read_deepdish
from .io import DataError
from .octopi import OCTOPI_RULE, prepare_octopi
from .registry import get, specs
from .tag import prepare_tag
from .ycb import prepare_ycb

__all__ = ["extract_video", "contact_scores", "select_contact", "prepare_tag", "prepare_cloth", "prepare_octopi",
           "read_deepdish", "prepare_feel", "make_feel_split", "prepare_ycb", "write_contact_index", "prepare",
           "main"]


def write_contact_index(name: str, root: str, rule: str = "diff") -> Dict[str, int]:
    """Derive the contact index of dataset ``name`` (its ``DatasetSpec.contact_index``: ``contact_obj.csv`` for
    ``of_real``, ``contact_visgel.csv`` for ``visgel``) from the frame folders already under the root: every folder
    of frames is one sequence, scored by ``rule``."""
    target = get(name).contact_index
    if target is None:
        have = sorted(s.name for s in specs() if s.contact_index is not None)
        raise ValueError(f"no contact index rule for {name!r}; expected one of {have}")
    base = os.path.join(root, target.frames_dir)
    if not os.path.isdir(base):
        raise DataError(f"{name}: frames folder not found: {base}", base)
    rx = re.compile(target.pattern)
    seqs = []
    for d, _, files in os.walk(base):
        names = sorted((f for f in files if rx.fullmatch(f)), key=lambda f: int(re.sub(r"\D", "", f)))
        if names:
            seqs.append((d, names))
    rows = []
    for d, names in tqdm(sorted(seqs), desc=f"{name} contact index", unit="sequence"):
        rows += contact_rows(d, names, os.path.relpath(d, base).replace(os.sep, "/"), rule)
    write_rows(os.path.join(root, target.index_file), rows)
    return {"sequences": len(seqs), "index_rows": len(rows)}


def prepare(name: str, raw: str, root: str, **options) -> Dict[str, int]:
    """Run dataset ``name``'s preparation step (``DatasetSpec.prepare``) with the options it declares."""
    spec = get(name)
    if spec.prepare is None:
        have = sorted(s.name for s in specs() if s.prepare is not None)
        raise ValueError(f"dataset {name!r} has no preparation step; datasets with one: {have}")
    extra = sorted(set(options) - set(spec.prepare_options))
    if extra:
        raise TypeError(f"prepare {name}: option(s) {extra} do not apply; it takes {list(spec.prepare_options)}")
    return spec.prepare(raw, root, **options)


# CLI option -> argparse keyword arguments; a dataset's prepare_options pick the ones passed to its step
OPTIONS = {
    "rule": dict(choices=(OCTOPI_RULE,) + RULES, help="contact rule (default: cloth all, octopi octopi = Octopi's "
                                                      "own selection, index diff)"),
    "start_index": dict(type=int, help="number of the first extracted frame (default: cloth 1, others 0)"),
    "lists": dict(help="tag: folder holding the TAG list files (default: searched under --raw)"),
    "touch_only": dict(action="store_true", default=None, help="feel: write only the touch_during A/B pair"),
    "mode": dict(choices=("copy", "symlink"), help="ycb_slide, force, slip, pose: copy or link the download "
                                                   "(default copy)"),
}


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> Dict[str, int]:
    """CLI: ``python -m anytouch.data.prepare {<dataset with a prepare step>,feel-split,index} ...``."""
    steps = [s.name for s in specs() if s.prepare is not None]
    ap = argparse.ArgumentParser(prog=prog or "python -m anytouch.data.prepare", description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=steps + ["feel-split", "index"])
    ap.add_argument("--raw", help="the raw download folder")
    ap.add_argument("--root", required=True, help="the data root (the original's tactile_datasets/)")
    for key, kwargs in OPTIONS.items():
        ap.add_argument("--" + key.replace("_", "-"), dest=key, **kwargs)
    ap.add_argument("--split", type=int, default=3, help="feel-split: k of split_<k>.json")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="feel-split: share of objects in test")
    ap.add_argument("--seed", type=int, default=0, help="feel-split: permutation seed")
    ap.add_argument("--name", choices=sorted(s.name for s in specs() if s.contact_index is not None),
                    help="index: which dataset's contact CSV to derive")
    a = ap.parse_args(argv)
    if a.dataset == "feel-split":
        out = {"written": make_feel_split(a.root, a.split, a.test_fraction, a.seed)}
    elif a.dataset == "index":
        if not a.name:
            ap.error("index needs --name")
        out = write_contact_index(a.name, a.root, a.rule or "diff")
    else:
        if not a.raw:
            ap.error(f"{a.dataset} needs --raw")
        spec = get(a.dataset)
        given = {k: getattr(a, k) for k in OPTIONS if getattr(a, k) is not None}
        extra = sorted(set(given) - set(spec.prepare_options))
        if extra:
            ap.error(f"{a.dataset} does not take " + ", ".join("--" + k.replace("_", "-") for k in extra))
        out = prepare(a.dataset, a.raw, a.root, **given)
    print(f"{a.dataset}: " + ", ".join(f"{k} {v}" for k, v in out.items()))
    return out


if __name__ == "__main__":
    main()
