"""Reading tactile / camera frames from disk (spec 4: the original opens every image with PIL and converts to RGB).

Frames are decoded from their file bytes with ``torchvision.io.decode_image`` (JPEG, PNG, GIF, WebP); any other
format (BMP, TIFF, ...) goes through PIL. Grey and RGBA images become RGB; 16-bit images (PNG, TIFF) are scaled to
8 bits (``value >> 8``), so every frame is uint8 whatever its bit depth. A missing, empty, corrupt or truncated file
raises :class:`DataError` naming the file and what was expected, never a bare decoder error.
"""
from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2.functional import to_dtype

__all__ = ["DataError", "read_image"]

_PIL_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # PIL's convert("RGB") clips these at 255 instead of scaling


class DataError(RuntimeError):
    """Bad or missing data: a file, index row or folder that is not what the loader expects.

    ``path`` is the offending file or folder (``None`` when there is no single one).
    """

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = None if path is None else str(path)


def _torchvision_format(head: bytes) -> bool:
    """True if the header is a format ``decode_image`` reads (JPEG, PNG, GIF, WebP)."""
    return (
        head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith((b"GIF87a", b"GIF89a"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def read_image(path: str, contiguous: bool = True) -> torch.Tensor:
    """Read an image file -> (3, H, W) uint8 RGB tensor (16-bit files are scaled to 8 bits).

    ``contiguous=False`` may return the decoder's channels-last memory as a (3, H, W) view: a uint8 resize reads
    that layout directly, and skipping the copy halves the cost of decode + resize.

    Raises:
        DataError: the file is missing, empty, not an image, corrupt or truncated.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"image file not found: {path} (expected an existing JPEG/PNG frame)", path) from None
    except OSError as e:
        raise DataError(f"cannot read image file {path}: {e}", path) from e
    if not data:
        raise DataError(f"image file is empty (0 bytes): {path}; expected a JPEG/PNG frame", path)
    if _torchvision_format(data[:12]):
        try:
            img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError as e:
            # torchvision prefixes "decode_jpeg, <source file>:<line>, "; keep the human-readable tail
            reason = str(e).strip().splitlines()[-1].split(", ")[-1][:200]
            raise DataError(
                f"corrupt or truncated image file {path} ({len(data)} bytes): {reason}; expected a decodable image",
                path,
            ) from e
        if img.dtype == torch.uint16:  # 16-bit PNG: decode_image keeps the bit depth
            img = to_dtype(img, torch.uint8, scale=True)
    else:
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.mode in _PIL_16BIT_MODES:  # 16-bit grey (e.g. TIFF)
                    grey = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
                    arr = np.repeat(grey[:, :, None], 3, axis=2)
                else:
                    arr = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DataError(
                f"not a readable image file {path} ({len(data)} bytes): {type(e).__name__}; expected an image", path
            ) from e
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    if img.ndim != 3 or img.shape[0] != 3 or img.shape[1] == 0 or img.shape[2] == 0:
        raise DataError(f"image file {path} decoded to shape {tuple(img.shape)}; expected (3, H, W)", path)
    if img.dtype != torch.uint8:
        raise DataError(f"image file {path} decoded to {img.dtype}; expected 8 or 16 bits per channel", path)
    return img.contiguous() if contiguous else img
