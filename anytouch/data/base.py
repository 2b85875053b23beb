"""The machinery shared by the nine pre-training loaders of AnyTouch (docs/original/data.md).

A loader scans its index files once, at construction, into a compact table of entries (one entry = the frames of
one sample, oldest first, plus sensor id, paired vision frame, text file and object key); ``__getitem__`` reads
and transforms them into the sample dicts of docs/design.md ("Data sample contract").

Clips (docs/original/data.md#clip-frames): ``video`` = frames t-3..t (4 frames), ``cross_video`` = t-2..t, times the
source's stride (3 for YCB-Slide); ``image`` / ``cross_image`` = frame t. A sample is kept only if every frame exists,
looked up by its *exact* name in the cached directory listing (fixes docs/original/defects.md#7-tvl-prefix-matching: no
prefix matching). Every path is built from the data root (fixes bug 4). Index entries whose contact frame is missing are
counted and reported in one warning; entries whose earlier frames are missing (e.g. t < 3) are left out as in the
original and counted in ``stats``.
"""
from __future__ import annotations

import csv
import os
import pickle
import re
import warnings
from collections import Counter
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .device_aug import DEFAULT_JITTER, load_touch_uint8
from .io import DataError, open_text, read_image
from .text import empty_text, load_text_file
from .transforms import TouchTransform, VisionTransform

KINDS = ("image", "video", "cross_image", "cross_video")
CLIP_OFFSETS = {"image": (0,), "video": (-3, -2, -1, 0), "cross_image": (0,), "cross_video": (-2, -1, 0)}
ORIGINAL_ROOT_NAME = "tactile_datasets"  # the original's data folder; verbatim index paths start with it

__all__ = ["KINDS", "CLIP_OFFSETS", "FrameFormat", "FileIndex", "TouchDataset", "read_rows", "parse_int"]


class FrameFormat:
    """Frame names of one source: ``pattern`` (regex, group 1 = frame number) and ``template`` ("{:010d}.jpg")."""

    def __init__(self, pattern: str, template: str):
        self.regex = re.compile(pattern)
        self.template = template

    def parse(self, name: str) -> Optional[int]:
        m = self.regex.fullmatch(name)
        return int(m.group(1)) if m else None

    def neighbour(self, files: "FileIndex", folder: str, t: int) -> Optional[str]:
        """The exact file name of frame ``t`` in ``folder``, or None if it does not exist."""
        name = self.template.format(t)
        return name if files.has(folder, name) else None

    def __repr__(self) -> str:
        return self.template


class FileIndex:
    """Cached directory listings, so existence checks are exact-name set lookups (one ``listdir`` per folder)."""

    def __init__(self):
        self._names: Dict[str, frozenset] = {}

    def names(self, folder: str) -> frozenset:
        if folder not in self._names:
            try:
                self._names[folder] = frozenset(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                self._names[folder] = frozenset()
        return self._names[folder]

    def has(self, folder: str, name: str) -> bool:
        return name in self.names(folder)

    def exists(self, path: str) -> bool:
        folder, name = os.path.split(path)
        return self.has(folder, name)


def _is_header(cells: Sequence[str]) -> bool:
    return all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ ]*", c) for c in cells)


def read_rows(path: str, min_cols: int = 1) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(line_number, cells)`` of a CSV index file; blank lines and a header line 1 are skipped.

    Raises:
        DataError: a row with fewer than ``min_cols`` cells or an empty first cell (names file and line).
    """
    with open_text(path, "index file", newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if lineno == 1 and _is_header(cells):
                continue
            if len(cells) < min_cols or not cells[0]:
                raise DataError(
                    f"{path}:{lineno}: malformed row {row!r}; expected at least {min_cols} comma-separated "
                    f"column(s) with a non-empty first column",
                    path,
                )
            yield lineno, cells


def parse_int(value: str, path: str, lineno: int, column: str) -> int:
    """``int(value)`` or a DataError naming the file, line and column."""
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: column {column} is {value!r}; expected an integer", path) from None


def strip_original_root(rel: str) -> Optional[str]:
    """``tactile_datasets/x/y`` (a verbatim path of the original's index files) -> ``x/y``; else None."""
    parts = rel.replace("\\", "/").split("/")
    if ORIGINAL_ROOT_NAME in parts:
        return "/".join(parts[parts.index(ORIGINAL_ROOT_NAME) + 1:])
    return None


class TouchDataset(Dataset):
    """Base class of the pre-training loaders. Subclasses set the class attributes and implement :meth:`scan`.

    Args:
        root: the data root, laid out like the original ``tactile_datasets/``
        (docs/original/data.md#per-dataset-layout).
        clip: ``image`` | ``video`` | ``cross_image`` | ``cross_video``.
        stage: 1 (touch only) or 2 (adds ``vision``/``text`` with flags; cross kinds never do).
        image_size / vision_size: output sides of touch frames and camera images.
        train: augmentation on/off. ``jitter``: ColorJitter factors or None. ``antialias``: resize antialiasing
            (default as the original: off for stage-1 video and cross video, on otherwise).
        path: this source's folder (absolute or relative to ``root``), overriding ``default_dirs``.
        text_dir: folder holding the text ``.pt`` files (default ``<root>/text``; TacQuad ``<root>/text_tacquad``).
    """

    source = ""
    default_dirs: Tuple[str, ...] = ()
    text_default = "text"
    kinds = KINDS
    stride = 1
    has_text = False

    def __init__(self, root: str, clip: str = "image", stage: int = 1, image_size: int = 224,
                 vision_size: int = 224, train: bool = True, path: Optional[str] = None,
                 text_dir: Optional[str] = None, antialias: Optional[bool] = None, jitter=DEFAULT_JITTER,
                 split: str = "train"):
        if split != "train":
            raise ValueError(f"{self.source}: pre-training data has only split 'train', got split={split!r}")
        if clip not in self.kinds:
            raise ValueError(f"{self.source}: unsupported clip kind {clip!r}; expected one of {self.kinds}")
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        self.clip, self.stage = clip, int(stage)
        self.multimodal = self.stage == 2 and not clip.startswith("cross")
        self.offsets = tuple(o * self.stride for o in CLIP_OFFSETS[clip])
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise DataError(f"data root not found: {self.root} (expected a folder laid out like tactile_datasets/)",
                            self.root)
        self.dir = self._find_dir(path)
        self.text_dir = os.path.join(self.root, text_dir or self.text_default)
        if self.multimodal and self.has_text and not os.path.isdir(self.text_dir):
            raise DataError(f"{self.source}: text folder not found: {self.text_dir} (stage 2 needs the pre-tokenised "
                            f"text files of docs/original/data.md#text; set data.text_dir to override)", self.text_dir)
        if antialias is None:
            antialias = not (clip == "cross_video" or (clip == "video" and self.stage == 1))
        self.touch_tf = TouchTransform(image_size, train=train, jitter=jitter, antialias=antialias)
        self.vision_tf = VisionTransform(vision_size, train=train)
        self.vision_size = int(vision_size)
        self.files = FileIndex()
        self.stats: Counter = Counter()
        self._examples: Dict[str, str] = {}
        self._dirs: List[str] = []
        self._dir_ids: Dict[str, int] = {}
        rows: List[tuple] = []
        self._rows = rows
        self.scan()
        del self._rows, self.files
        if not rows:
            raise DataError(f"{self.source}: no {clip} samples found under {self.dir} ({self.describe_stats()})",
                            self.dir)
        self.sensor_ids = np.array([r[2] for r in rows], dtype=np.int8)
        self.object_ids = np.array([r[5] for r in rows], dtype=np.int32)
        blobs = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in rows]
        # one packed buffer instead of a list of Python objects: DataLoader workers share it without refcount copies
        self._offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        self._buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        self._warn()

    # ---- construction helpers for subclasses -------------------------------------------------------------------
    def dir_candidates(self) -> Sequence[str]:
        """Folders (relative to root) to try for this source, in order; the first that exists wins."""
        return self.default_dirs

    def _find_dir(self, path: Optional[str]) -> str:
        cands = [path] if path else list(self.dir_candidates())
        for c in cands:
            d = os.path.join(self.root, c)
            if os.path.isdir(d):
                return d
        tried = ", ".join(os.path.join(self.root, c) for c in cands)
        raise DataError(f"{self.source}: dataset folder not found (tried {tried}); expected the layout of docs/original/data.md#per-dataset-layout "
                        f"or data.paths.{self.source} pointing at it", os.path.join(self.root, cands[0]))

    def find_file(self, candidates: Sequence[str], what: str) -> str:
        """First existing file among ``candidates`` (absolute paths) or a DataError listing them all."""
        for c in candidates:
            if os.path.isfile(c):
                return c
        raise DataError(f"{self.source}: {what} not found (tried {', '.join(candidates)})", candidates[0])

    def row_candidates(self, rel: str, bases: Sequence[str]) -> List[str]:
        """Full paths an index path may denote: ``base/rel`` for each base, then ``rel`` as a verbatim path of the
        original (relative to the repository root, i.e. starting with ``tactile_datasets/``) or relative to root."""
        cands = [os.path.join(b, rel) for b in bases]
        stripped = strip_original_root(rel)
        cands += [os.path.join(self.root, stripped)] if stripped is not None else [os.path.join(self.root, rel)]
        return list(dict.fromkeys(os.path.normpath(c) for c in cands))

    def find_clip(self, candidates: Sequence[str], fmt: FrameFormat,
                  where: str) -> Optional[Tuple[str, Tuple[str, ...]]]:
        """The (folder, frame names oldest first) of the clip ending at the indexed frame, trying each candidate
        location of that frame in order; None (and counted in ``stats``) if no candidate has every frame."""
        found = None
        for cand in candidates:
            folder, name = os.path.split(cand)
            if not self.files.has(folder, name):
                continue
            found = found or cand
            if len(self.offsets) == 1:
                return folder, (name,)
            t = fmt.parse(name)
            if t is None:
                raise DataError(f"{where}: frame name {name!r} does not follow the format {fmt!r} of {self.source}",
                                cand)
            names = []
            for o in self.offsets[:-1]:
                nb = fmt.neighbour(self.files, folder, t + o) if t + o >= 0 else None
                if nb is None:
                    break
                names.append(nb)
            else:
                return folder, tuple(names) + (name,)
        self.note("clip frames missing (or t too small)" if found else "contact frame missing", found or candidates[0])
        return None

    def text_file(self, name: str) -> Optional[str]:
        """Full path of text file ``name`` if it exists, else None (counted in ``stats``, warned about)."""
        path = os.path.join(self.text_dir, name)
        if os.path.isfile(path):
            return path
        self.note("text file missing", path)
        return None

    def note(self, what: str, example: str) -> None:
        self.stats[what] += 1
        self._examples.setdefault(what, example)

    def add(self, folder: str, names: Sequence[str], sensor: int, vision: Optional[str] = None,
            text: Optional[str] = None, obj: int = -1) -> None:
        """Record one sample: frames ``folder/names`` (oldest first), optional vision and text files (full paths)."""
        vis = self._split(vision) if (self.multimodal and vision) else None
        txt = self._split(text) if (self.multimodal and text) else None
        self._rows.append((self._dir_id(folder), tuple(names), int(sensor), vis, txt, int(obj)))

    def _dir_id(self, folder: str) -> int:
        if folder not in self._dir_ids:
            self._dir_ids[folder] = len(self._dirs)
            self._dirs.append(folder)
        return self._dir_ids[folder]

    def _split(self, path: str) -> Tuple[int, str]:
        folder, name = os.path.split(path)
        return self._dir_id(folder), name

    def describe_stats(self) -> str:
        if not self.stats:
            return "no index entry was left out"
        return "; ".join(f"{n} x {k}, e.g. {self._examples[k]}" for k, n in self.stats.items())

    def _warn(self) -> None:
        bad = {k: n for k, n in self.stats.items() if not k.startswith("clip frames")}
        if bad:
            warnings.warn(f"{self.source} ({self.clip}): " + "; ".join(
                f"{n} x {k} (e.g. {self._examples[k]})" for k, n in bad.items()), stacklevel=3)

    def scan(self) -> None:
        """Read the index files and call :meth:`add` for every sample."""
        raise NotImplementedError

    # ---- loading -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._offsets) - 1

    def entry(self, index: int) -> dict:
        """The stored entry of sample ``index``: frame paths, sensor, vision and text paths, object key."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.source}: index {index} out of range for {len(self)} samples")
        a, b = self._offsets[index], self._offsets[index + 1]
        d, names, sensor, vis, txt, obj = pickle.loads(self._buffer[a:b].tobytes())
        folder = self._dirs[d]
        return {"frames": [os.path.join(folder, n) for n in names], "sensor": sensor, "object": obj,
                "vision": None if vis is None else os.path.join(self._dirs[vis[0]], vis[1]),
                "text": None if txt is None else os.path.join(self._dirs[txt[0]], txt[1])}

    def __getitem__(self, index: int) -> dict:
        """The worker side of a sample: uint8 ``touch`` (and ``vision``) plus ``touch_aug``, the parameters the
        device applies (:func:`anytouch.data.device_aug.batch_to_device`)."""
        e = self.entry(index)
        frames = load_touch_uint8(e["frames"], self.touch_tf.size, self.touch_tf.antialias)
        touch, params = self.touch_tf.load(frames[0] if len(frames) == 1 else frames)
        sample = {"touch": touch, "touch_aug": params, "sensor": e["sensor"], "source": self.source}
        if self.multimodal:
            if e["vision"] is not None:
                sample["vision"], sample["vision_flag"] = self.vision_tf.load(read_image(e["vision"])), 1
            else:
                sample["vision"] = torch.zeros(3, self.vision_size, self.vision_size, dtype=torch.uint8)
                sample["vision_flag"] = 0
            ids, mask = load_text_file(e["text"]) if e["text"] is not None else empty_text()
            sample["text_ids"], sample["text_mask"], sample["text_flag"] = ids, mask, int(e["text"] is not None)
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source}, clip={self.clip}, stage={self.stage}, n={len(self)})"
