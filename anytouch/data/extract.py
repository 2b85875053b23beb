"""Helpers shared by the datasets' ``prepare`` steps: frames out of videos, contact scoring, index files.

Contact index rules (ours; the original's lists were made by an undocumented process): frames are scored by the mean
absolute grey-level difference from the sequence's first frame (the unloaded gel) at 64x64. ``all`` keeps every
frame; ``diff`` keeps frames scoring at least ``max(2, 0.5 * max score)``; ``top`` keeps the top 30 % by that score.
Octopi's own rule (:func:`octopi_selection`) scores each frame against the previous one instead; ``prepare
octopi`` uses it by default.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
from typing import List, Sequence

import cv2
import numpy as np

from .io import DataError

__all__ = ["place_tree", "RULES", "extract_video", "read_video", "contact_scores", "select_contact", "octopi_selection",
           "write_frame", "write_rows", "contact_rows", "find_files"]

RULES = ("all", "diff", "top")


def read_video(video: str) -> List[np.ndarray]:
    """Every frame of ``video`` as OpenCV decodes it (BGR uint8 (H, W, 3))."""
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise DataError(f"cannot open video {video} with OpenCV (missing, corrupt or unsupported codec)", video)
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise DataError(f"video {video} has no decodable frame", video)
    return frames


def write_frame(path: str, frame: np.ndarray) -> None:
    """Write one BGR frame (``.jpg`` at quality 95, or ``.png``), raising DataError on failure."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith(".jpg") else []
    if not cv2.imwrite(path, frame, params):
        raise DataError(f"cannot write frame {path}", path)


def extract_video(video: str, out_dir: str, template: str, start_index: int = 0) -> int:
    """Write every frame of ``video`` to ``out_dir/template.format(start_index + k)`` (OpenCV); returns the count.

    The extension of ``template`` picks the codec (``.jpg`` quality 95, ``.png``).
    """
    frames = read_video(video)
    os.makedirs(out_dir, exist_ok=True)
    for k, frame in enumerate(frames):
        write_frame(os.path.join(out_dir, template.format(start_index + k)), frame)
    return len(frames)


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


def octopi_selection(frames: Sequence[np.ndarray], fraction: float = 0.3) -> np.ndarray:
    """Octopi's frame selection: the video frame indices (sorted) it keeps.

    Every frame i >= 1 scores the number of pixels (times 255) whose grey level (OpenCV BGR->GRAY) differs from frame
    i-1 at all (the absolute difference binarised at threshold 0); the ``int(fraction * len(frames))`` highest
    scores are kept, ties in time order (a stable sort). Frame 0 has no previous frame and is never kept.
    """
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    scores = np.array([float(np.where(cv2.absdiff(grey[i], grey[i - 1]) > 0, 255, 0).sum())
                       for i in range(1, len(grey))])
    keep = np.argsort(-scores, kind="stable")[:int(fraction * len(frames))]
    return np.sort(keep + 1)


def write_rows(path: str, rows: List[List]) -> None:
    """Write ``rows`` as a CSV file (creating its folder)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def contact_rows(folder: str, names: List[str], rel_prefix: str, rule: str) -> List[List[str]]:
    """Index rows ``[<rel_prefix>/<name>]`` of the frames of one sequence that ``rule`` keeps."""
    if rule == "all":
        keep = range(len(names))
    else:
        keep = select_contact(contact_scores([os.path.join(folder, n) for n in names]), rule)
    return [[f"{rel_prefix}/{names[i]}"] for i in keep]


def find_files(raw: str, pattern: str) -> List[str]:
    """Every file under ``raw`` (recursively) whose name matches the regex ``pattern``, sorted; DataError if none."""
    rx = re.compile(pattern)
    found = sorted(os.path.join(d, f) for d, _, files in os.walk(raw) for f in files if rx.fullmatch(f))
    if not found:
        raise DataError(f"no file matching {pattern!r} under {raw}", raw)
    return found


def place_tree(src: str, dst: str, mode: str) -> None:
    """Put folder ``src`` at ``dst``: ``copy`` (merged into an existing ``dst``) or ``symlink`` (one link; an
    existing ``dst`` is kept)."""
    if mode not in ("copy", "symlink"):
        raise ValueError(f"mode {mode!r}; expected 'copy' or 'symlink'")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if mode == "symlink":
        if not os.path.lexists(dst):
            os.symlink(os.path.abspath(src), dst)
    else:
        shutil.copytree(src, dst, dirs_exist_ok=True)
