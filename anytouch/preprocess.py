"""Turn PIL images, numpy arrays or uint8 tensors into the normalised tensors AnyTouch expects
(docs/original/data.md#transforms).

Touch frames use ImageNet statistics and a plain resize to (size, size) (aspect ratio not kept, bilinear,
antialiased), like the original test-time transform, except that the resize runs on uint8 frames (:func:`resize_uint8`,
the path the training loaders use too): a pixel may differ from the original's float resize by one 8-bit level, at
most 1/255/0.225 = 0.0175 after normalisation (held to that bound in tests/test_device_aug.py). Vision images use CLIP statistics: resize of the
shorter side to ``size`` (bicubic, antialiased), centre crop.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "CLIP_MEAN", "CLIP_STD",
    "to_uint8_chw", "check_unit_range", "resize_uint8", "preprocess_touch", "preprocess_touch_batch",
    "preprocess_vision", "vision_unit", "vision_shorter_side", "center_crop", "normalize",
    "BACKGROUND_OFFSET", "subtract_background", "preprocess_touch2", "preprocess_touch2_batch",
]


def to_uint8_chw(img: ImageLike) -> torch.Tensor:
    """PIL image, (H,W,3) / (H,W) numpy array or (3,H,W) / (H,W,3) tensor -> (3,H,W) uint8 tensor (RGB).

    Float arrays/tensors must be finite and in [0, 1] (:func:`check_unit_range`; ValueError otherwise).
    """
    if isinstance(img, Image.Image):
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    if isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img))
        if t.ndim == 2:
            t = t.unsqueeze(-1).expand(-1, -1, 3)
        if t.ndim != 3 or t.shape[-1] not in (3, 4):
            raise ValueError(f"expected an (H,W,3) or (H,W) array, got shape {tuple(img.shape)}")
        t = t[..., :3].permute(2, 0, 1)
    elif isinstance(img, torch.Tensor):
        t = img
        if t.ndim == 2:
            t = t.unsqueeze(0).expand(3, -1, -1)
        if t.ndim != 3:
            raise ValueError(f"expected a (3,H,W) tensor, got shape {tuple(img.shape)}")
        if t.shape[0] not in (3, 4) and t.shape[-1] in (3, 4):
            t = t.permute(2, 0, 1)
        if t.shape[0] not in (3, 4):
            raise ValueError(f"expected 3 channels, got shape {tuple(img.shape)}")
        t = t[:3]
    else:
        raise TypeError(f"unsupported image type {type(img).__name__}; expected PIL.Image, numpy array or tensor")
    if t.dtype == torch.uint8:
        return t.contiguous()
    if t.is_floating_point():
        check_unit_range(t, "to_uint8_chw")
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    raise TypeError(f"unsupported image dtype {t.dtype}; expected uint8 or float in [0, 1]")


def check_unit_range(x: torch.Tensor, where: str, tol: float = 1 / 255) -> None:
    """Raise ValueError unless the float tensor ``x`` is finite and within [0, 1] (up to ``tol``, one grey level).

    Catches frames still in 0..255 (which clamping would turn almost entirely white), already-normalised frames and
    NaN / inf pixels. One reduction on ``x``'s device and one host sync per call; the details of a failure are only
    computed when it fails.
    """
    lo, hi = torch.aminmax(x.detach())
    if bool((lo >= -tol) & (hi <= 1 + tol)):  # False for NaN: every comparison with NaN is False
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{where}: {int((~finite).sum())} of {x.numel()} pixel values are NaN or infinite; "
                         "expected finite frames (uint8, or float in [0, 1])")
    raise ValueError(f"{where}: float frames must be in [0, 1], got values in [{float(lo):.4g}, {float(hi):.4g}]; "
                     "divide 0..255 float frames by 255 (or pass uint8), and pass raw, not normalised, frames")


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(..., 3, H, W) float in [0,1] -> normalised."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - m) / s


def resize_uint8(frames: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> (..., 3, size, size) uint8: bilinear, aspect ratio not kept (``antialias=False`` as the
    original's stage-1 and cross-sensor clips). The one touch resize of the package: loaders, packing, evaluation."""
    if frames.shape[-2:] == (size, size):
        return frames
    return TF.resize(frames, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=antialias)


def _resize(x: torch.Tensor, size, mode: str) -> torch.Tensor:
    return F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)


def preprocess_touch(frames: Union[ImageLike, Sequence[ImageLike]], size: int = 224,
                     background: Optional[ImageLike] = None) -> torch.Tensor:
    """Touch frame(s) -> ImageNet-normalised, resized tensors (no augmentation).

    Args:
        frames: one frame (PIL image, (H,W,3) / (H,W) array, (3,H,W) / (H,W,3) tensor), or a clip: a list/tuple of
            such frames, a (T,H,W,3) numpy array or a (T,3,H,W) / (T,H,W,3) tensor (oldest frame first). uint8, or
            float in [0, 1].
        size: output side length.
        background: optional background frame (any single-frame form above), subtracted from every frame as in
            :func:`subtract_background` before the resize.

    Returns:
        (3, size, size) for one frame; (T, 3, size, size) for a clip (every frame preprocessed the same way).

    Raises:
        ValueError: a float frame with NaN / inf pixels or values outside [0, 1] (:func:`check_unit_range`).
    """
    single = not isinstance(frames, (list, tuple))
    if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim >= 4:
        if frames.ndim > 4:
            raise ValueError(
                f"preprocess_touch got an array of shape {tuple(frames.shape)}; expected one frame (H,W,3) / (3,H,W) "
                "or a clip (T,H,W,3) / (T,3,H,W)"
            )
        single = False  # a 4-D array / tensor is a clip of T frames
    seq = [frames] if single else list(frames)
    if not seq:
        raise ValueError("preprocess_touch got an empty clip")
    bg = None if background is None else to_uint8_chw(background)
    x = preprocess_touch_batch(torch.stack([to_uint8_chw(f) for f in seq]), size, channels_last=False, background=bg)
    return x[0] if single else x


def _flat_frames(frames: torch.Tensor, channels_last: Optional[bool], name: str, single: str):
    """(B,[T],H,W,3) / (B,[T],3,H,W) tensor -> (frames flattened to (N,3,H,W), the batch shape (B,[T]),
    channels_last as resolved: last when the last axis has 3 entries and the third-to-last does not)."""
    if not isinstance(frames, torch.Tensor) or frames.ndim not in (4, 5):
        shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
        raise ValueError(f"{name} expects a (B,H,W,3) / (B,3,H,W) or (B,T,H,W,3) / (B,T,3,H,W) "
                         f"tensor, got {shape}; for single frames or lists use {single}")
    if channels_last is None:
        channels_last = frames.shape[-1] == 3 and frames.shape[-3] != 3
    x = frames.movedim(-1, -3) if channels_last else frames
    if x.shape[-3] != 3:
        raise ValueError(f"{name}: expected 3 colour channels, got shape {tuple(frames.shape)}")
    return x.reshape(-1, *x.shape[-3:]), x.shape[:-3], channels_last


def preprocess_touch_batch(frames: torch.Tensor, size: int = 224, channels_last: Optional[bool] = None,
                           background: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A batch of raw frames or clips, on any device -> what :func:`preprocess_touch` gives for each, stacked.

    For a camera loop or a policy: the frames stay on their device (GPU), one resize call for the whole batch.

    Args:
        frames: uint8 (or float in [0, 1]) tensor (B,H,W,3) / (B,3,H,W) images or (B,T,H,W,3) / (B,T,3,H,W) clips.
        size: output side length.
        channels_last: whether the channel axis is last; by default it is inferred (last when the last axis has 3
            entries and the third-to-last does not).
        background: optional background frame(s), (B,H,W,3) / (B,3,H,W) or one (H,W,3) / (3,H,W) frame for the whole
            batch, subtracted as in :func:`subtract_background` before the resize.

    Returns:
        (B,3,size,size) or (B,T,3,size,size), float32, ImageNet-normalised (AnyTouch 1 statistics; AnyTouch 2
        input comes from :func:`preprocess_touch2_batch`).

    Raises:
        ValueError: float frames with NaN / inf pixels or values outside [0, 1] (:func:`check_unit_range`: one
            reduction and one host sync per call; uint8 frames need no check).
    """
    x, lead, channels_last = _flat_frames(frames, channels_last, "preprocess_touch_batch", "preprocess_touch")
    if x.is_floating_point():
        check_unit_range(x, "preprocess_touch_batch")
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)  # the uint8 quantisation preprocess_touch applies
    elif x.dtype != torch.uint8:
        raise TypeError(f"preprocess_touch_batch: unsupported dtype {x.dtype}; expected uint8 or float in [0, 1]")
    if background is not None:  # subtracted in float at full resolution, then back to 8 bits for the one path
        x = _subtract_flat(x.float() / 255.0, background, lead, channels_last)
        x = (x * 255).round().to(torch.uint8)
    # = anytouch.data.device_aug.apply_touch_aug(resize_uint8(x), IDENTITY): the evaluation half of the training path
    x = resize_uint8(x, size).float() / 255.0
    return normalize(x, IMAGENET_MEAN, IMAGENET_STD).reshape(*lead, 3, size, size)


def preprocess_vision(img: ImageLike, size: int = 224) -> torch.Tensor:
    """A camera image -> (3,size,size), shorter side resized to ``size`` (bicubic), centre-cropped, CLIP-normalised."""
    return normalize(vision_unit(img, size), CLIP_MEAN, CLIP_STD)


def vision_unit(img: ImageLike, size: int = 224) -> torch.Tensor:
    """:func:`preprocess_vision` before normalisation: (3,size,size) float in [0, 1]."""
    return center_crop(vision_shorter_side(img, size), size)


def vision_shorter_side(img: ImageLike, size: int = 224) -> torch.Tensor:
    """The image resized (bicubic, antialiased) so its shorter side is ``size``: (3, >=size, >=size) float in [0, 1]."""
    x = to_uint8_chw(img).float().unsqueeze(0) / 255.0
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    return _resize(x, (nh, nw), "bicubic").clamp(0, 1)[0]


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of a (..., H, W) tensor with H, W >= size."""
    nh, nw = x.shape[-2:]
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]



# --- background subtraction and the AnyTouch 2 input (docs/anytouch2.md) ---------------------------------------------

# AnyTouch 2 feeds frame - background + 130/255 (clamped to [0, 1]): a mid-grey where nothing touches the gel
BACKGROUND_OFFSET = 130 / 255


def subtract_background(frames: torch.Tensor, background: torch.Tensor,
                        offset: float = BACKGROUND_OFFSET) -> torch.Tensor:
    """``clamp(frames - background + offset, 0, 1)`` in float, with no re-quantisation.

    Args:
        frames: float in [0, 1], (B, 3, H, W) or (B, T, 3, H, W).
        background: float in [0, 1], (B, 3, H, W) (one frame per sample, broadcast over T) or (3, H, W) (one frame
            for the whole batch).
    """
    if background.ndim not in (3, 4) or background.shape[-3:] != frames.shape[-3:]:
        raise ValueError(f"background of shape {tuple(background.shape)} does not fit frames of shape "
                         f"{tuple(frames.shape)}; expected one (3, H, W) frame per sample with the frames' H and W")
    if background.ndim == 4:
        if background.shape[0] != frames.shape[0]:
            raise ValueError(f"got {background.shape[0]} background frames for a batch of {frames.shape[0]}")
        background = background.view(background.shape[0], *([1] * (frames.ndim - 4)), *background.shape[1:])
    return (frames - background + offset).clamp(0, 1)


def _unit_float(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if x.is_floating_point():
        return x.float()
    raise TypeError(f"{what}: unsupported dtype {x.dtype}; expected uint8 or float in [0, 1]")


def _background_chw(background, channels_last: Optional[bool], device) -> torch.Tensor:
    """A background tensor (B,H,W,3) / (B,3,H,W) / (H,W,3) / (3,H,W) -> float (..., 3, H, W) in [0, 1] on ``device``."""
    if not isinstance(background, torch.Tensor) or background.ndim not in (3, 4):
        shape = tuple(background.shape) if hasattr(background, "shape") else type(background).__name__
        raise ValueError(f"background must be a (B,H,W,3) / (B,3,H,W) tensor, or one (H,W,3) / (3,H,W) frame; got {shape}")
    if channels_last is None:
        channels_last = background.shape[-1] == 3 and background.shape[-3] != 3
    bg = background.movedim(-1, -3) if channels_last else background
    if bg.shape[-3] != 3:
        raise ValueError(f"background: expected 3 colour channels, got shape {tuple(background.shape)}")
    return _unit_float(bg.to(device), "background")


def _subtract_flat(x: torch.Tensor, background, lead, channels_last: Optional[bool]) -> torch.Tensor:
    """``x`` (prod(lead), 3, H, W) flattened frames with batch shape ``lead`` -> background-subtracted, same shape."""
    bg = _background_chw(background, channels_last, x.device)
    return subtract_background(x.view(*lead, *x.shape[-3:]), bg).view(x.shape)


def preprocess_touch2_batch(frames: torch.Tensor, background: Optional[torch.Tensor] = None, size: int = 224,
                            channels_last: Optional[bool] = None) -> torch.Tensor:
    """Raw frames or clips, on any device -> AnyTouch 2 model input.

    In this order: background subtraction in float (:func:`subtract_background`; skipped when ``background`` is
    None), resize of every frame to (size, size) (bilinear, antialiased, aspect ratio not kept), CLIP statistics.

    Args:
        frames: uint8 (or float in [0, 1], used as is) tensor, (B,T,H,W,3) / (B,T,3,H,W) clips or (B,H,W,3) /
            (B,3,H,W) images, RGB, oldest frame first.
        background: uint8 / float (B,H,W,3) / (B,3,H,W), one frame per sample, or one (H,W,3) / (3,H,W) frame for
            the whole batch; at the frames' resolution (before any resize).
        size: output side length (the encoder's ``image_size``).
        channels_last: whether the channel axis is last; inferred by default as for :func:`preprocess_touch_batch`.

    Returns:
        (B,T,3,size,size) or (B,3,size,size), float32, CLIP-normalised, on the frames' device.
    """
    x, lead, channels_last = _flat_frames(frames, channels_last, "preprocess_touch2_batch", "preprocess_touch2")
    x = _unit_float(x, "preprocess_touch2_batch")
    if background is not None:
        x = _subtract_flat(x, background, lead, channels_last)
    x = _resize(x, (size, size), "bilinear")
    return normalize(x, CLIP_MEAN, CLIP_STD).reshape(*lead, 3, size, size)


def preprocess_touch2(frames: Union[ImageLike, Sequence[ImageLike]], background: Optional[ImageLike] = None,
                      size: int = 224) -> torch.Tensor:
    """One frame or a clip (PIL images, arrays or tensors, as for :func:`preprocess_touch`) -> AnyTouch 2 input.

    Returns (3, size, size) for one frame, (T, 3, size, size) for a clip (a list, or a 4-D array / tensor).
    """
    single = not isinstance(frames, (list, tuple)) and not (isinstance(frames, (np.ndarray, torch.Tensor))
                                                             and frames.ndim == 4)
    seq = [frames] if single else list(frames)
    if not seq:
        raise ValueError("preprocess_touch2 got an empty clip")
    bg = None if background is None else to_uint8_chw(background)
    x = preprocess_touch2_batch(torch.stack([to_uint8_chw(f) for f in seq]), bg, size, channels_last=False)
    return x[0] if single else x
