"""Embed tactile files with an AnyTouch touch encoder: images, videos and clip folders -> one feature row each.

What becomes a row (docs/original/architecture.md#patch-embedding: an image is a 3-frame clip of identical frames; a
clip uses 3 consecutive frames):

* an image file (``.png .jpg .jpeg .gif .bmp .tif .tiff .webp``) -> one row, named by its path (a GIF must
  hold one frame: the frame reader refuses animated ones);
* a video (``.mp4 .mov .avi .mkv .webm``, decoded with OpenCV) or a *clip folder* (a folder of frames, taken in
  natural name order, when ``clip_folders=True``) -> 3-frame windows ``[t, t+1, t+2]`` every ``stride`` frames;
  ``video_mode="clips"`` gives one row per window (named ``path#t``), ``"mean"`` one row per video: the mean of its
  window features;
* any other folder is searched recursively for images and videos; files of other types in it are skipped and
  listed by :func:`scan_inputs` (``anytouch embed`` reports them).

Frames are preprocessed by the encoder's own ``preprocess`` (AnyTouch 1: like the original's test transform,
:func:`anytouch.preprocess.preprocess_touch`; AnyTouch 2: background subtraction and CLIP statistics), and a window
is the encoder's own: 3 consecutive frames for AnyTouch 1, ``num_frames`` frames ``frame_stride`` apart for
AnyTouch 2 (docs/anytouch2.md).
"""
from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from safetensors.numpy import save_file

from .data.io import DataError, read_image, read_video_frames
from .preprocess import preprocess_touch
from .sensors import SensorLike

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "InputScan", "scan_inputs", "find_inputs", "iter_units", "embed_paths",
           "names_file", "save_features"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
CLIP_FRAMES = 3


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTS


@dataclass
class InputScan:
    """What :func:`scan_inputs` found: ``units`` as ``(kind, path)`` and the files of other types it skipped."""

    units: List[Tuple[str, Path]] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)


def scan_inputs(paths: Sequence[Union[str, Path]], clip_folders: bool = False) -> InputScan:
    """Expand ``paths`` into ``(kind, path)`` units with kind ``image``, ``video`` or ``clip`` (a frame folder).

    A file named directly must be an image or a video; files of other types inside a folder are skipped and listed
    in ``skipped``. Raises FileNotFoundError for a missing path, ValueError for a named file of another type or
    when nothing is found.
    """
    scan = InputScan()
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            ext = p.suffix.lower()
            if ext not in IMAGE_EXTS + VIDEO_EXTS:
                raise ValueError(f"{p}: unsupported file type {ext!r}; expected an image ({' '.join(IMAGE_EXTS)}) "
                                 f"or a video ({' '.join(VIDEO_EXTS)})")
            scan.units.append(("image" if ext in IMAGE_EXTS else "video", p))
        elif p.is_dir():
            _walk(p, clip_folders, scan)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    if not scan.units:
        raise ValueError(f"no images or videos found under {', '.join(map(str, paths))} "
                         f"(looked for {' '.join(IMAGE_EXTS + VIDEO_EXTS)})")
    return scan


def find_inputs(paths: Sequence[Union[str, Path]], clip_folders: bool = False) -> List[Tuple[str, Path]]:
    """The units of :func:`scan_inputs` (same errors)."""
    return scan_inputs(paths, clip_folders).units


def _walk(folder: Path, clip_folders: bool, scan: InputScan) -> None:
    entries = sorted(folder.iterdir(), key=_natural_key)
    kinds = {e: "image" if _is_image(e) else "video" if e.suffix.lower() in VIDEO_EXTS else None
             for e in entries if e.is_file()}
    if clip_folders and "image" in kinds.values():  # the folder is one clip: its frames, nothing else
        scan.units.append(("clip", folder))
        scan.skipped += [e for e, k in kinds.items() if k != "image"]
        return
    scan.units += [(k, e) for e, k in kinds.items() if k == "image"] + [(k, e) for e, k in kinds.items() if k == "video"]
    scan.skipped += [e for e, k in kinds.items() if k is None]
    for sub in (e for e in entries if e.is_dir()):
        _walk(sub, clip_folders, scan)


def _frames(kind: str, path: Path, strict: bool = False) -> Iterator[Union[np.ndarray, torch.Tensor]]:
    if kind == "video":
        return read_video_frames(str(path), strict=strict)
    return (read_image(str(f)) for f in sorted(path.iterdir(), key=_natural_key) if f.is_file() and _is_image(f))


def iter_units(units: Iterable[Tuple[str, Path]], image_size: int, stride: int = 1, strict: bool = False, *,
               frames: int = CLIP_FRAMES, frame_stride: int = 1,
               preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
               ) -> Iterator[Tuple[str, Path, int, torch.Tensor]]:
    """Yield ``(kind, path, t, tensor)``: images as (3, S, S) with t = 0; videos / clip folders as (frames, 3, S, S)
    windows of ``frames`` frames ``frame_stride`` apart starting at frame t, every ``stride`` frames (AnyTouch 1:
    3 consecutive frames; an AnyTouch 2 encoder gives its own ``num_frames`` and ``frame_stride``). Raises
    DataError for a video or folder too short for one window.

    ``preprocess`` maps one raw frame (1, 3, H, W) uint8 to (1, 3, S, S) model input (an encoder's
    ``preprocess``, with its background frame); by default :func:`anytouch.preprocess.preprocess_touch`. Each frame
    is preprocessed once, however many windows it is part of.

    A video that decodes fewer frames than its header promises warns ("decoded N of M frames"), or raises
    DataError when ``strict`` (:func:`anytouch.data.io.read_video_frames`)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if preprocess is None:
        def preprocess(x: torch.Tensor) -> torch.Tensor:
            return preprocess_touch(x[0], size=image_size).unsqueeze(0)
    span = (frames - 1) * frame_stride + 1  # raw frames one window covers
    for kind, path in units:
        if kind == "image":
            yield kind, path, 0, preprocess(_chw(read_image(str(path))))[0]
            continue
        window: deque = deque(maxlen=span)
        count = 0
        for t, frame in enumerate(_frames(kind, path, strict)):
            window.append(preprocess(_chw(frame))[0])
            count += 1
            start = t - span + 1
            if start >= 0 and start % stride == 0:
                yield kind, path, start, torch.stack(list(window)[::frame_stride])
        if count < span:
            raise DataError(f"{path}: {count} frame(s); a clip needs at least {span} "
                            f"(this encoder's window: {frames} frames, {frame_stride} apart)", str(path))


def _chw(frame: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """A decoded frame ((3,H,W) tensor from the image reader, (H,W,3) array from the video reader) -> (1,3,H,W)."""
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1) if isinstance(frame, np.ndarray) else frame
    return x.unsqueeze(0)


@torch.no_grad()
def embed_paths(encoder, paths: Sequence[Union[str, Path]], sensor: SensorLike = "universal", pooling: str = "cls",
                batch_size: int = 32, video_mode: str = "clips", stride: int = 1, clip_folders: bool = False,
                normalize: bool = False, dtype: Optional[torch.dtype] = None, strict: bool = False,
                background: Optional[torch.Tensor] = None) -> Tuple[np.ndarray, List[str]]:
    """Embed every unit found under ``paths`` (see the module docstring). Returns (features (N, P) float32, names).

    The encoder's own input contract is used: its ``preprocess`` (statistics, resize; ``background``, a (3,H,W)
    uint8 no-contact frame, is subtracted first: AnyTouch 2 is trained with it), its ``num_frames`` and
    ``frame_stride``.

    ``dtype`` (e.g. ``torch.bfloat16`` on a GPU) runs the encoder under autocast; ``normalize`` L2-normalises rows.
    ``strict``: a truncated video (fewer frames decoded than its header promises) raises DataError instead of a
    warning.
    """
    if video_mode not in ("clips", "mean"):
        raise ValueError(f"video_mode={video_mode!r}; expected 'clips' (one row per window) or 'mean'")
    units = find_inputs(paths, clip_folders)
    dev = next(encoder.parameters()).device
    feats: List[torch.Tensor] = []
    keys: List[Tuple[str, Path, int]] = []
    pending: Dict[int, List] = {4: [], 5: []}  # images and clips batch separately (different shapes)

    def flush(ndim: int) -> None:
        items = pending[ndim]
        if not items:
            return
        x = torch.stack([t for *_, t in items]).to(dev)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            feats.append(encoder(x, sensor, pooling=pooling).float().cpu())
        keys.extend((k, p, t) for k, p, t, _ in items)
        items.clear()

    order: Dict[Tuple[str, str], int] = {}  # input order (batches of images and clips flush out of order)
    bg = None if background is None else torch.as_tensor(background).to(dev)

    def prep(frame: torch.Tensor) -> torch.Tensor:
        return encoder.preprocess(frame.to(dev), background=bg).cpu()

    for kind, path, t, x in iter_units(units, encoder.image_size, stride, strict=strict, frames=encoder.num_frames,
                                       frame_stride=getattr(encoder, "frame_stride", 1), preprocess=prep):
        order.setdefault((kind, str(path)), len(order))
        ndim = x.ndim + 1
        pending[ndim].append((kind, path, t, x))
        if len(pending[ndim]) == batch_size:
            flush(ndim)
    flush(4)
    flush(5)
    rows = torch.cat(feats)
    names, out = _collect(rows, keys, video_mode, order)
    if normalize:
        out = torch.nn.functional.normalize(out, dim=-1)
    return out.numpy(), names


def _collect(rows: torch.Tensor, keys: List[Tuple[str, Path, int]], video_mode: str, order: Dict[Tuple[str, str], int]):
    """Order rows by input, then window; with ``mean``, average each video's windows."""
    groups: Dict[Tuple[str, str], List[Tuple[int, int]]] = {}
    for i, (kind, path, t) in enumerate(keys):
        groups.setdefault((kind, str(path)), []).append((t, i))
    names, out = [], []
    for (kind, path), items in sorted(groups.items(), key=lambda g: order[g[0]]):
        items.sort()
        if kind == "image":
            names.append(path)
            out.append(rows[items[0][1]])
        elif video_mode == "mean":
            names.append(path)
            out.append(rows[[i for _, i in items]].mean(0))
        else:
            names += [f"{path}#{t}" for t, _ in items]
            out += [rows[i] for _, i in items]
    return names, torch.stack(out)


def names_file(path: Union[str, Path]) -> Path:
    """The row-names file of a features file, named after it so that two outputs in one folder never share one:
    ``feats.npy`` -> ``feats.names.txt``, ``feats.safetensors`` -> ``feats.safetensors.names.txt``."""
    path = Path(path)
    return path.with_name((path.stem if path.suffix == ".npy" else path.name) + ".names.txt")


def save_features(path: Union[str, Path], features: np.ndarray, names: Sequence[str],
                  metadata: Optional[Dict[str, str]] = None) -> List[Path]:
    """Write ``features`` to ``.npy`` or ``.safetensors`` (tensor ``features``; ``metadata`` + names as JSON in the
    header) and the row names to :func:`names_file`, one per line. Returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, features.astype(np.float32))
    elif path.suffix == ".safetensors":
        meta = {**(metadata or {}), "names": json.dumps(list(names))}
        save_file({"features": np.ascontiguousarray(features, dtype=np.float32)}, str(path), metadata=meta)
    else:
        raise ValueError(f"output {path}: unsupported extension {path.suffix!r}; expected .npy or .safetensors")
    names_path = names_file(path)
    names_path.write_text("".join(f"{n}\n" for n in names))
    return [path, names_path]
