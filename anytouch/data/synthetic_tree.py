"""Write a small data root in the ORIGINAL on-disk layout (spec 4.2, 4.3, 4.6) with synthetic frames.

The real loaders (and ``anytouch.data.verify``) can then be exercised end to end without a download. Frames come from
:mod:`anytouch.data.synthetic_render` (same sensor looks, materials and labels as the in-memory synthetic sets); every
recording is an object pressed in over ``frames`` frames. Text files are ``(input_ids, attention_mask)`` pairs of
an attribute caption, saved like the original's pre-tokenised ``.pt`` files (spec 4.2).
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from ..progress import progress as tqdm  # quiet off a terminal

from .synthetic_render import (LOOKS, OF_MATERIALS, TAG_MATERIALS, caption, random_scene, render_grasp, render_touch,
                               render_vision)
from .text import encode_text

__all__ = ["write_synthetic_tree", "TREE_NAMES"]


class _Writer:
    def __init__(self, root: str, seed: int, size: int, sequences: int, frames: int):
        self.root, self.seed, self.size, self.sequences, self.frames = root, seed, size, sequences, frames
        self.count = 0

    def rng(self, *keys) -> np.random.Generator:
        return np.random.default_rng([self.seed] + [zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys])

    def image(self, rel: str, chw: np.ndarray) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).save(path, quality=95)
        self.count += 1

    def text(self, rel: str, material, variant: int) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(encode_text(caption(material, variant)), path)

    def lines(self, rel: str, rows: Sequence[Sequence]) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(",".join(str(c) for c in r) + "\n" for r in rows)

    def sequence(self, rng, sensor: int, material, n: Optional[int] = None):
        """(scene, uint8 (n,3,R,R) frames pressing in): the first frame barely touches."""
        n = n or self.frames
        scene = random_scene(rng, material)
        return scene, render_touch(scene, LOOKS[sensor], self.size, rng, list(np.linspace(0.1, 1.0, n)))


def _tacquad(w: _Writer) -> None:
    sensors = {"gelsight": 3, "digit": 1, "duragel": 4}
    for part in ("indoor", "outdoor"):
        rows = []
        for k in range(w.sequences):
            rng = w.rng("tacquad", part, k)
            m = TAG_MATERIALS[int(rng.integers(20))]
            item = f"{part}_object_{k}"
            row = [item]
            n = w.frames + 3  # the cross-sensor loaders skip the first 3 frames of each contact range (spec 3.3)
            for folder, sid in sensors.items():
                scene, frames = w.sequence(rng, sid, m, n)
                for t, f in enumerate(frames):
                    w.image(f"tacquad/data_{part}/{item}/{folder}/{t}.png", f)
                for j in range(2):
                    w.image(f"tacquad/data_{part}/{item}/img_{folder}/{j}.png", render_vision(scene, w.size, rng))
                row += [1, n - 1]
            rows.append(row)
            w.text(f"text_tacquad/tacquad_{part}_{k}.pt", m, k)
        w.lines(f"tacquad/contact_{part}.csv", rows)


def _tag(w: _Writer) -> None:
    label, text_rows, lists = [], [], {"train.txt": [], "test.txt": [], "train_rough.txt": [], "test_rough.txt": []}
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


def _visgel(w: _Writer) -> None:
    rows = []
    for k in range(w.sequences):
        rng = w.rng("visgel", k)
        scene, frames = w.sequence(rng, 0, TAG_MATERIALS[int(rng.integers(20))])
        for t, f in enumerate(frames):
            w.image(f"visgel/images/touch/seen/rec{k}/frame{t:04d}.jpg", f)
            w.image(f"visgel/images/vision/seen/rec{k}/frame{t:04d}.jpg", render_vision(scene, w.size, rng))
            rows += [[f"seen/rec{k}/frame{t:04d}.jpg"]] if t > 0 else []
    w.lines("contact_visgel.csv", rows)


def _cloth(w: _Writer) -> None:
    rows = []
    for k in range(w.sequences):
        rng = w.rng("cloth", k)
        _, frames = w.sequence(rng, 0, TAG_MATERIALS[13])
        for t, f in enumerate(frames):
            w.image(f"yuan18/Data_ICRA18/Data/{k}/1/gelsight_frame/{t:04d}.png", f)
            rows.append([f"{k}/1/gelsight_frame/{t:04d}.png"])
    w.lines("contact_yuan.csv", rows)


def _of_real(w: _Writer) -> None:
    rows, text_rows = [], []
    for k in range(w.sequences):
        rng = w.rng("of_real", k)
        m = OF_MATERIALS[k % len(OF_MATERIALS)]
        scene, frames = w.sequence(rng, 2, m)
        base = f"{k}/tactile_data/1/0"
        for t, f in enumerate(frames):
            w.image(f"objectfolder/real/tactile/{base}/gelsight/{t}.png", f)
            w.image(f"objectfolder/real/tactile/{base}/vision/{t}.png", render_vision(scene, w.size, rng))
            rows.append([f"{base}/gelsight/{t}.png"])
            text_rows.append([f"{base}/gelsight/{t}.png", f"{base}/vision/{t}.png", k])
        w.text(f"text/obj_{k}.pt", m, k)
    w.lines("contact_obj.csv", rows)
    w.lines("contact_text_obj.csv", text_rows)


def _octopi(w: _Writer) -> None:
    rows = []
    for k in range(w.sequences):
        rng = w.rng("octopi", k)
        m = TAG_MATERIALS[int(rng.integers(20))]
        _, frames = w.sequence(rng, 3, m)
        for t, f in enumerate(frames):
            w.image(f"octopi/processed/object_{k}/{t:010d}.jpg", f)
        rows += [[f"processed/object_{k}/{t:010d}.jpg", k] for t in range(1, w.frames)]
        w.text(f"text/octopi_{k}.pt", m, k)
    w.lines("contact_octopi.csv", [r[:1] for r in rows])
    w.lines("contact_text_octopi.csv", rows)


def _tvl(w: _Writer) -> None:
    paths, text_rows = [], []
    for k in range(w.sequences):
        rng = w.rng("tvl", k)
        m = TAG_MATERIALS[int(rng.integers(20))]
        scene, frames = w.sequence(rng, 1, m)
        for t, f in enumerate(frames):
            name = f"{k * 100 + t}-{1000 + t}.jpg"
            w.image(f"TVL/tvl_dataset/hct/data1/sess{k}/tactile/{name}", f)
            w.image(f"TVL/tvl_dataset/hct/data1/sess{k}/vision/{name}", render_vision(scene, w.size, rng))
            paths.append(f"sess{k}/tactile/{name}")
            text_rows.append([f"data1/sess{k}/tactile/{name}", k])
        w.text(f"text/tvl_{k}.pt", m, k)
    os.makedirs(os.path.join(w.root, "TVL/tvl_dataset/hct/data1"), exist_ok=True)
    with open(os.path.join(w.root, "TVL/tvl_dataset/hct/data1/contact.json"), "w", encoding="utf-8") as f:
        json.dump({"tactile": paths, "vision": [p.replace("tactile", "vision") for p in paths]}, f)
    w.lines("contact_text_tvl.csv", text_rows)


def _ssvtp(w: _Writer) -> None:
    for i in range(w.sequences * 2):
        rng = w.rng("ssvtp", i)
        m = TAG_MATERIALS[int(rng.integers(20))]
        scene, frames = w.sequence(rng, 1, m, n=1)
        w.image(f"TVL/tvl_dataset/ssvtp/images_tac/image_{i}_tac.jpg", frames[0])
        w.image(f"TVL/tvl_dataset/ssvtp/images_rgb/image_{i}_rgb.jpg", render_vision(scene, w.size, rng))
        w.text(f"text/ssvtp_{i}.pt", m, i)


def _ycb(w: _Writer) -> None:
    for k in range(w.sequences):
        rng = w.rng("ycb", k)
        _, frames = w.sequence(rng, 1, OF_MATERIALS[k % 7], n=max(w.frames, 10))
        for t, f in enumerate(frames):
            w.image(f"YCB-Slide/real/object_{k}/dataset_0/frames/frame_{t:07d}.jpg", f)


def _feel(w: _Writer) -> None:
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


def _objectfolder(w: _Writer) -> None:
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


TREE_WRITERS: Dict[str, Callable[[_Writer], None]] = {
    "tacquad": _tacquad, "tag": _tag, "visgel": _visgel, "cloth": _cloth, "of_real": _of_real, "octopi": _octopi,
    "tvl": _tvl, "ssvtp": _ssvtp, "ycb_slide": _ycb, "feel": _feel, "objectfolder": _objectfolder,
}
TREE_NAMES = tuple(TREE_WRITERS)


def write_synthetic_tree(root: str, names: Optional[Sequence[str]] = None, sequences: int = 3, frames: int = 6,
                         size: int = 64, seed: int = 0, progress: bool = True) -> Dict[str, int]:
    """Write synthetic data under ``root`` in the original layout; returns ``{name: files written}``.

    Args:
        names: among ``TREE_NAMES`` (the nine pre-training sources, ``feel`` and ``objectfolder`` = OF1 + OF2);
            default all. ``tag`` also writes the TAG probe lists (train/test, roughness; label -1 on first frames).
        sequences: recordings (objects) per source; frames: frames per recording; size: frame side in pixels.
    """
    names = list(TREE_NAMES if names is None else names)
    unknown = sorted(set(names) - set(TREE_NAMES))
    if unknown:
        raise ValueError(f"unknown tree part(s) {unknown}; expected among {TREE_NAMES}")
    w = _Writer(root, seed, size, sequences, frames)
    out = {}
    for name in tqdm(names, desc="synthetic tree", unit="dataset", disable=not progress):
        before = w.count
        TREE_WRITERS[name](w)
        out[name] = w.count - before
    return out
