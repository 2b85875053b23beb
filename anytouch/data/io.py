"""Reading tactile / camera frames, videos and text index files from disk (docs/original/data.md: the original opens
every image with PIL and converts to RGB).

Frames are decoded from their file bytes with ``torchvision.io.decode_image`` (JPEG, GIF, WebP); PNG and any other
format (BMP, TIFF, ...) go through PIL. PNG is kept away from torchvision because its libpng wrapper crashes the
whole process (segmentation fault) on damaged compressed data instead of raising; PIL's own PNG decoder raises.
Grey and RGBA images become RGB; 16-bit images (PNG, TIFF) are scaled to 8 bits (``value >> 8``), so every frame is
uint8 whatever its bit depth. Images larger than :data:`MAX_IMAGE_PIXELS` (or, for JPEG, wider or taller than
libjpeg's 65,500 pixels) are refused from their header, before any decoding. A missing, empty, corrupt, truncated or
oversized file raises :class:`DataError` naming the file and what was expected, never a bare decoder error.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

__all__ = ["DataError", "MAX_IMAGE_PIXELS", "read_image", "read_video_frames", "open_text"]

_PIL_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # PIL's convert("RGB") clips these at 255 instead of scaling
# Largest image read: PIL's decompression-bomb limit (~13,400 x 13,400); a tactile frame is far below it, and a
# file above it is damaged or not a frame. Decoding it would allocate gigabytes before anything could be checked.
MAX_IMAGE_PIXELS = 178_956_970
_JPEG_MAX_SIDE = 65_500  # libjpeg refuses larger images
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DataError(RuntimeError):
    """Bad or missing data: a file, index row or folder that is not what the loader expects.

    ``path`` is the offending file or folder (``None`` when there is no single one).
    """

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = None if path is None else str(path)


def _torchvision_format(head: bytes) -> bool:
    """True if the header is a format decoded with ``decode_image`` (JPEG, GIF, WebP; PNG goes through PIL)."""
    return (
        head.startswith(b"\xff\xd8\xff")
        or head.startswith((b"GIF87a", b"GIF89a"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def _read_bytes(path: str, what: str, expected: str = "") -> bytes:
    """The file's bytes, or a DataError naming the file (``what`` says what it should be)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}{expected}", path) from None
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e}", path) from e


def read_image(path: str, contiguous: bool = True) -> torch.Tensor:
    """Read an image file -> (3, H, W) uint8 RGB tensor (16-bit files are scaled to 8 bits).

    ``contiguous=False`` may return the decoder's channels-last memory as a (3, H, W) view: a uint8 resize reads
    that layout directly, and skipping the copy halves the cost of decode + resize.

    Raises:
        DataError: the file is missing, empty, not an image, corrupt or truncated.
    """
    path = os.fspath(path)
    data = _read_bytes(path, "image file", " (expected an existing JPEG/PNG frame)")
    if not data:
        raise DataError(f"image file is empty (0 bytes): {path}; expected a JPEG/PNG frame", path)
    size = _header_size(data, path)
    if _torchvision_format(data[:12]):
        try:
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError as e:
            raise DataError(
                f"corrupt or truncated image file {path} ({len(data)} bytes): {_decoder_reason(e)}; "
                "expected a decodable image",
                path,
            ) from e
    else:
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.mode in _PIL_16BIT_MODES:  # 16-bit grey (e.g. TIFF, PNG)
                    grey = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
                    arr = np.repeat(grey[:, :, None], 3, axis=2)
                else:
                    arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            known = size is not None or data.startswith(_PNG_SIGNATURE)
            reason = type(e).__name__ if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
            raise DataError(
                f"{'corrupt or truncated' if known else 'not a readable'} image file {path} ({len(data)} bytes): "
                f"{reason[:200]}; expected a decodable image",
                path,
            ) from e
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    if img.ndim != 3 or img.shape[0] != 3 or img.shape[1] == 0 or img.shape[2] == 0:
        raise DataError(f"image file {path} decoded to shape {tuple(img.shape)}; expected (3, H, W)", path)
    if img.dtype != torch.uint8:
        raise DataError(f"image file {path} decoded to {img.dtype}; expected 8 or 16 bits per channel", path)
    return img.contiguous() if contiguous else img


def _header_size(data: bytes, path: str) -> Optional[tuple]:
    """(width, height) from the image header (``None`` if PIL does not recognise the format); refuses an image
    too large to decode with a DataError naming the file, its size and the limit."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h, fmt = im.width, im.height, im.format
    except Image.DecompressionBombError as e:  # PIL's own limit (2 x Image.MAX_IMAGE_PIXELS) fired first
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f" ({int(found.group(1)):,} pixels)" if found else ""
        raise DataError(f"image file {path}{size} is larger than the reader's limit of {MAX_IMAGE_PIXELS:,} pixels "
                        f"(anytouch.data.io.MAX_IMAGE_PIXELS); expected a tactile or camera frame", path) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None  # not an image PIL knows from its header: the decoder below reports it
    if w * h > MAX_IMAGE_PIXELS or (fmt == "JPEG" and max(w, h) > _JPEG_MAX_SIDE):
        limit = (f"{MAX_IMAGE_PIXELS:,} pixels (anytouch.data.io.MAX_IMAGE_PIXELS)" if w * h > MAX_IMAGE_PIXELS
                 else f"{_JPEG_MAX_SIDE:,} pixels per side (libjpeg)")
        raise DataError(f"image file {path} is {w} x {h} pixels, larger than the reader's limit of {limit}; "
                        "expected a tactile or camera frame", path)
    return w, h


def _decoder_reason(e: RuntimeError) -> str:
    """The human-readable part of a torchvision decoder error, without its ``decode_xxx, <source>:<line>, ``
    prefix and any C++ backtrace that follows the first line."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return re.sub(r"^\w+, \S+:\d+, ", "", first)[:200]


def read_video_frames(path: str, strict: bool = False) -> Iterator[np.ndarray]:
    """Yield a video's frames as (H, W, 3) uint8 RGB arrays, decoded with OpenCV.

    A video that decodes fewer frames than its header promises (a truncated or damaged file) is reported as
    "decoded N of M frames" naming the file: a ``UserWarning`` after the last frame, or a :class:`DataError` when
    ``strict``. (Only a shortfall is reported: some containers estimate the count from the duration.)

    Raises:
        DataError: the file cannot be opened, or (``strict``) it decodes fewer frames than its header states.
    """
    import cv2  # OpenCV costs ~0.3 s to import; only video readers need it

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"video file not found: {path}", path)
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise DataError(f"cannot open video {path} with OpenCV (corrupt file or missing codec)", path)
    try:
        promised = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        count = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if 0 < count < promised:
        message = f"video {path}: decoded {count} of {promised} frames (truncated or damaged file)"
        if strict:
            raise DataError(message + "; expected every frame its header promises", path)
        warnings.warn(message, stacklevel=2)


def open_text(path: str, what: str = "text file", newline: Optional[str] = None) -> io.StringIO:
    """Open a UTF-8 text file (an index CSV, list or JSON file) like ``open(path, encoding="utf-8", newline=...)``.

    The whole file is decoded up front, so a byte that is not UTF-8 is reported as a :class:`DataError` naming the
    file, line and byte (the original index files are UTF-8) instead of a bare ``UnicodeDecodeError`` mid-read.
    """
    path = os.fspath(path)
    data = _read_bytes(path, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: byte 0x{data[e.start]:02x} at offset {e.start} is not UTF-8 ({e.reason}); "
                        f"expected a UTF-8 {what} (re-save it as UTF-8)", path) from None
    return io.StringIO(text, newline=newline)
