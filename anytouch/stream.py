"""A live tactile stream: camera (or video file) -> rolling window -> AnyTouch features -> a bench panel.

DIGIT and GelSight Mini are UVC cameras, so OpenCV reads them like any webcam (``0``, ``/dev/video2``); a video file
stands in for one and is paced at its own frame rate. A capture thread keeps the newest frames in a ring buffer of
the encoder's window span, ``(num_frames - 1) * frame_stride + 1`` frames, and counts the frames the model never
took (:class:`LatestFrame`), so a slow model never makes the stream lag: each step embeds the encoder's own window
(3 consecutive frames for AnyTouch 1; 4 frames 2 apart or 2 frames 6 apart for AnyTouch 2) of the newest captured
frames, and the summary says how many frames were dropped. Steps start once the buffer is full.

Each step's panel shows the current frame, the frame minus a no-contact background (the mean of the first frames,
or an image given), the contact score (cosine distance in embedding space between the current window and the
background) and, with labelled reference frames, the nearest label. The background is also subtracted in the model
input when the encoder is trained that way (AnyTouch 2) or when asked (``subtract_background=True``).
:func:`run_stream` returns the per-step records and a :class:`StreamSummary` (frames per second, end-to-end latency
from capture to finished panel, drops).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .policy import TactileEncoder, window_span

__all__ = ["LatestFrame", "StreamSummary", "open_source", "load_references", "run_stream", "draw_panel", "write_jsonl"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TILE_HEIGHT = 240


def open_source(source: Union[str, int]) -> Tuple[cv2.VideoCapture, bool]:
    """``0`` / ``"0"`` (camera index), ``/dev/videoN`` or a video file -> (opened capture, whether it is a file)."""
    text = str(source)
    is_file = not text.isdigit() and not text.startswith("/dev/video")
    if is_file and not Path(text).is_file():
        raise FileNotFoundError(f"--source {text}: no such video file (or give a camera index such as 0, or /dev/videoN)")
    cap = cv2.VideoCapture(int(text) if text.isdigit() else text)
    if not cap.isOpened():
        raise ValueError(f"--source {text}: OpenCV cannot open it (no such camera, busy, or not a readable video)")
    return cap, is_file


class LatestFrame:
    """A capture thread that hands out only the newest frame, with the ``history`` frames captured up to it.

    ``get()`` waits for a frame newer than the last one returned and gives ``(index, capture time, RGB uint8 frame,
    window)``, ``window`` being the last ``history`` captured frames up to it, oldest first (fewer at the start), or
    None once the source has ended and every frame was taken (a RuntimeError if reading it failed). A frame
    replaced before anyone took it counts as dropped (it still is in the windows of later frames). A file is paced
    at ``fps`` (its own rate by default), as a camera would deliver it.
    """

    def __init__(self, cap: cv2.VideoCapture, is_file: bool, fps: Optional[float] = None, history: int = 1):
        if history < 1:
            raise ValueError(f"history={history}; expected at least 1 frame")
        self.cap = cap
        self._ring: deque = deque(maxlen=history)
        rate = fps or (cap.get(cv2.CAP_PROP_FPS) if is_file else 0) or 0
        self.period = 1.0 / rate if is_file and rate > 0 else 0.0
        self.captured = self.dropped = 0
        self.error: Optional[BaseException] = None
        self._latest: Optional[Tuple[int, float, np.ndarray, List[np.ndarray]]] = None
        self._taken = True
        self._ended = self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="anytouch-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            while not self._stop:
                if self.period:
                    time.sleep(max(0.0, start + self.captured * self.period - time.perf_counter()))
                ok, bgr = self.cap.read()
                if not ok:
                    break
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                with self._cond:
                    if not self._taken:
                        self.dropped += 1
                    self._ring.append(frame)
                    self._latest, self._taken = (self.captured, time.perf_counter(), frame, list(self._ring)), False
                    self.captured += 1
                    self._cond.notify_all()
        except Exception as e:  # noqa: BLE001 -- handed to the consumer thread, which raises it from get()
            self.error = e
        finally:  # a consumer waiting in get() must not wait forever
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def get(self) -> Optional[Tuple[int, float, np.ndarray, List[np.ndarray]]]:
        with self._cond:
            self._cond.wait_for(lambda: not self._taken or self._ended)
            if self._taken:
                if self.error is not None:
                    raise RuntimeError(f"reading the source failed after {self.captured} frames: {self.error}") \
                        from self.error
                return None
            self._taken = True
            return self._latest

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.cap.release()


@dataclass
class StreamSummary:
    """What a stream run measured: steps embedded, frames captured / dropped, wall time, frames per second
    (steps / wall time), end-to-end latency (capture -> finished panel) mean / median / 95th percentile in ms;
    ``warmup``: frames taken before the window was full (not embedded)."""

    steps: int
    captured: int
    dropped: int
    seconds: float
    fps: float
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p95: float
    device: str = ""
    warmup: int = 0

    def line(self) -> str:
        warm = f"; {self.warmup} frame(s) filled the window first" if self.warmup else ""
        return (f"{self.steps} steps in {self.seconds:.2f} s on {self.device}: {self.fps:.1f} fps; end-to-end latency "
                f"mean {self.latency_ms_mean:.1f} ms, p50 {self.latency_ms_p50:.1f} ms, p95 "
                f"{self.latency_ms_p95:.1f} ms; dropped {self.dropped} of {self.captured} captured frames{warm}")


def _read_image(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read the image ({e})") from None


def load_references(folder: Union[str, Path]) -> Dict[str, List[np.ndarray]]:
    """``folder/<label>/*.png|jpg|bmp`` -> {label: [RGB uint8 frames]}; an empty label folder is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--references {root}: no such folder (expected <folder>/<label>/*.png)")
    refs: Dict[str, List[np.ndarray]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"--references {root}: label folder {sub.name!r} holds no {'/'.join(IMAGE_SUFFIXES)} image")
        refs[sub.name] = [_read_image(p) for p in files]
    if not refs:
        raise ValueError(f"--references {root}: no label folders (expected <folder>/<label>/*.png)")
    return refs


def _tile(rgb: np.ndarray, title: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    tile = cv2.resize(rgb, (max(1, round(w * TILE_HEIGHT / h)), TILE_HEIGHT), interpolation=cv2.INTER_AREA)
    tile = np.ascontiguousarray(tile)
    cv2.putText(tile, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
    return tile


def draw_panel(frame: np.ndarray, background: np.ndarray, record: Dict, threshold: float) -> np.ndarray:
    """The RGB panel of one step: current frame | |frame - background| x 4 | contact score bar and nearest label."""
    diff = np.clip(np.abs(frame.astype(np.int16) - background.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    info = np.zeros((TILE_HEIGHT, 260, 3), np.uint8)
    score = record["contact_distance"]
    colour = (255, 80, 80) if record["contact"] else (80, 200, 80)
    cv2.rectangle(info, (10, 40), (10 + int(240 * min(1.0, score / max(2 * threshold, 1e-6))), 60), colour, -1)
    cv2.line(info, (130, 35), (130, 65), (255, 255, 255), 1)  # the threshold sits mid-bar
    lines = [f"contact: {'YES' if record['contact'] else 'no'}", f"distance {score:.3f} (thr {threshold:g})",
             f"last latency {record['latency_ms']:.0f} ms", f"dropped {record['dropped']}"]
    if record.get("nearest") is not None:
        lines.insert(2, f"nearest: {record['nearest']} ({record['similarity']:.2f})")
    for i, text in enumerate(lines):
        cv2.putText(info, text, (10, 90 + 24 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([_tile(frame, f"frame {record['frame']}"), _tile(diff, "frame - background"), info], axis=1)


@torch.no_grad()
def _embed(touch: TactileEncoder, frames: Sequence[np.ndarray], device: torch.device,
           background: Optional[torch.Tensor]) -> torch.Tensor:
    """A history (newest last) -> unit-norm (1, D) feature of its window; a single frame is a static image."""
    x = torch.from_numpy(np.stack(frames)).to(device).unsqueeze(0)  # (1, T, H, W, 3)
    return F.normalize(touch(x[:, 0] if len(frames) == 1 else x, background=background), dim=-1)


def run_stream(touch: TactileEncoder, source: Union[str, int], *, background: Union[None, str, Path] = None,
               background_frames: int = 10, references: Union[None, str, Path] = None, threshold: float = 0.1,
               max_steps: Optional[int] = None, source_fps: Optional[float] = None,
               subtract_background: Optional[bool] = None,
               on_step: Optional[Callable[[Dict, np.ndarray], None]] = None) -> Tuple[List[Dict], StreamSummary]:
    """Stream ``source`` through ``touch`` until it ends (or ``max_steps``).

    Args:
        touch: the feature module (its encoder's window, its sensor and device are used; bf16 autocast on a GPU).
        source: camera index, ``/dev/videoN`` or a video file.
        background: a no-contact image; default: the mean of the first ``background_frames`` frames.
        references: ``folder/<label>/*.png``: the nearest label (cosine similarity of single-frame features).
        threshold: cosine distance to the background embedding above which a step counts as contact.
        max_steps: stop after this many embedded steps.
        source_fps: pace a video file at this rate instead of its own.
        subtract_background: subtract the background in the model input too; default (None): when the encoder is
            trained with it (AnyTouch 2), not for AnyTouch 1 (which was trained on plain frames).
        on_step: called with ``(record, panel RGB)`` after each step (show / write).

    Returns:
        ``(records, summary)``: one JSON-ready dict per step (steps start once the capture buffer holds a whole
        window; (frame index, capture time, latency, contact distance,
        contact, nearest label and similarity, drops so far) and the :class:`StreamSummary`.
    """
    device = next(touch.parameters()).device
    if subtract_background is None:
        subtract_background = touch.encoder.family == "anytouch2"
    span = window_span(touch.encoder)
    refs = load_references(references) if references is not None else {}
    cap, is_file = open_source(source)
    grab = LatestFrame(cap, is_file, fps=source_fps, history=span)
    try:
        bg_frames = [_read_image(Path(background))] if background is not None else []
        while len(bg_frames) < (1 if background is not None else background_frames):
            got = grab.get()
            if got is None:
                raise ValueError(f"--source {source}: ended after {len(bg_frames)} frames, before the "
                                 f"{background_frames} no-contact background frames were captured")
            bg_frames.append(got[2])
        bg = np.mean(np.stack(bg_frames), axis=0).round().astype(np.uint8)
        bg_input = torch.from_numpy(bg).to(device) if subtract_background else None
        bg_feat = _embed(touch, [bg], device, bg_input)
        ref_labels, ref_feats = [], []
        for label, frames in refs.items():
            for f in frames:
                if bg_input is not None and f.shape != bg.shape:
                    raise ValueError(f"--references: an image of {label!r} is {f.shape[1]}x{f.shape[0]}, the "
                                     f"background {bg.shape[1]}x{bg.shape[0]}; the background is subtracted from "
                                     "the references too, so they must be frames of this camera")
                ref_labels.append(label)
                ref_feats.append(_embed(touch, [f], device, bg_input))
        ref_mat = torch.cat(ref_feats) if ref_feats else None
        records, latencies = [], []
        warmup = 0
        start = time.perf_counter()
        while max_steps is None or len(records) < max_steps:
            got = grab.get()
            if got is None:
                break
            index, t_capture, frame, window = got
            if frame.shape != bg.shape:
                raise ValueError(f"--source {source}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the "
                                 f"background {bg.shape[1]}x{bg.shape[0]}; give a --background of the camera's size")
            if len(window) < span:  # the encoder's window is not there yet
                warmup += 1
                continue
            feat = _embed(touch, window, device, bg_input)
            distance = float(1 - (feat @ bg_feat.T))
            record = {"step": len(records), "frame": index, "contact_distance": round(distance, 6),
                      "contact": distance > threshold, "dropped": grab.dropped, "nearest": None, "similarity": None}
            if ref_mat is not None:
                sims = (feat @ ref_mat.T)[0]
                best = int(sims.argmax())
                record["nearest"], record["similarity"] = ref_labels[best], round(float(sims[best]), 6)
            record["latency_ms"] = latencies[-1] if latencies else 0.0  # the panel shows the last known latency
            panel = draw_panel(frame, bg, record, threshold)
            record["latency_ms"] = round(1000 * (time.perf_counter() - t_capture), 3)
            latencies.append(record["latency_ms"])
            records.append(record)
            if on_step is not None:
                on_step(record, panel)
        seconds = time.perf_counter() - start
    finally:
        grab.close()
    lat = np.asarray(latencies or [float("nan")])
    summary = StreamSummary(len(records), grab.captured, grab.dropped, seconds, len(records) / max(seconds, 1e-9),
                            float(lat.mean()), float(np.percentile(lat, 50)), float(np.percentile(lat, 95)),
                            str(device), warmup)
    return records, summary


def write_jsonl(records: Sequence[Dict], path: Union[str, Path]) -> Path:
    """One JSON object per line."""
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path

