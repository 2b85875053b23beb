"""Training / evaluation transforms of AnyTouch (docs/original/data.md#transforms), split between the loader's workers
and the device.

Touch: :meth:`TouchTransform.load` is the worker side -- frames resized in uint8 (:func:`~anytouch.preprocess.
resize_uint8`) plus the sample's augmentation parameters (:func:`~anytouch.data.device_aug.draw_touch_params`, drawn
from torch's RNG in torchvision's order, so under the loaders' per-sample seed a sample gets the draws the former
float pipeline gave it); :func:`~anytouch.data.device_aug.apply_touch_aug` applies them to the collated batch on the
training device. ``TouchTransform(...)(frames)`` chains both for one sample. A clip ``(T, 3, H, W)`` shares one draw.

touch-train: Resize (size, size) bilinear -> RandomHorizontalFlip 0.5 -> RandomVerticalFlip 0.5 ->
ColorJitter(0.4, 0.4, 0.5, 0.3) -> ImageNet Normalize.  touch-test: Resize -> Normalize (= preprocess_touch).
vision-train: RandomRotation(+-20 deg) -> RandomHorizontalFlip 0.5 -> shorter side to ``size`` (bicubic,
antialiased) -> CenterCrop on the worker, shipped as uint8 -> CLIP Normalize on the device.  vision-test: the same without the
first two.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torchvision.transforms.v2 as T

from ..preprocess import CLIP_MEAN, CLIP_STD, center_crop, normalize, resize_uint8, vision_unit
from .device_aug import DEFAULT_JITTER, apply_touch_aug, draw_touch_params, jitter_ranges

__all__ = ["TouchTransform", "VisionTransform"]


def _check_frames(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} expects a (3,H,W) or (T,3,H,W) tensor, got {shape}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"{what} expects uint8 (or float in [0,1]) frames, got dtype {x.dtype}")


class TouchTransform:
    """Touch frames ``(3,H,W)`` or a clip ``(T,3,H,W)`` (uint8) -> ``size`` x ``size``, with the touch recipe.

    Args:
        size: output side (aspect ratio is not kept, like the original).
        train: random flips (h and v, p=0.5) and colour jitter; ``False`` = resize + normalise only.
        jitter: (brightness, contrast, saturation, hue) for ColorJitter, or ``None`` for no jitter.
        antialias: antialiased resize (the original used ``False`` for stage-1 and cross-sensor video clips).
    """

    def __init__(self, size: int, train: bool = True, jitter: Optional[Sequence[float]] = DEFAULT_JITTER,
                 antialias: bool = True):
        self.size, self.train, self.antialias = int(size), bool(train), bool(antialias)
        if jitter is not None:
            jitter_ranges(jitter)  # validates
        self.jitter = None if jitter is None else tuple(jitter)

    def load(self, frames: torch.Tensor):
        """The worker side: (uint8 frames resized to ``size``, the (AUG_DIM,) parameters drawn from torch's RNG)."""
        _check_frames(frames, "TouchTransform")
        if frames.is_floating_point():
            frames = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
        return resize_uint8(frames, self.size, self.antialias), draw_touch_params(self.train, self.jitter)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(3,H,W) -> (3,size,size); (T,3,H,W) -> (T,3,size,size) float, normalised; one draw per call."""
        x, params = self.load(frames)
        return apply_touch_aug(x[None], params[None])[0]

    def __repr__(self) -> str:
        return (f"TouchTransform(size={self.size}, train={self.train}, jitter={self.jitter}, "
                f"antialias={self.antialias})")


class VisionTransform:
    """A camera image ``(3,H,W)`` uint8 -> ``(3,size,size)`` float, CLIP-normalised (shorter side + centre crop).

    ``train=True`` first applies RandomRotation(+-20 deg, nearest, black fill) and RandomHorizontalFlip(0.5).
    """

    def __init__(self, size: int, train: bool = True):
        self.size = int(size)
        self.train = bool(train)
        self.augment = T.Compose([T.RandomRotation(20), T.RandomHorizontalFlip(0.5)]) if self.train else None

    def load(self, image: torch.Tensor) -> torch.Tensor:
        """The worker side: (3,H,W) uint8 -> augmented, resized, cropped (3,size,size) uint8 (normalised on the
        device by :func:`~anytouch.data.device_aug.batch_to_device`)."""
        _check_frames(image, "VisionTransform")
        if image.ndim != 3:
            raise ValueError(f"VisionTransform expects one (3,H,W) image, got {tuple(image.shape)}")
        if image.is_floating_point():
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        if self.augment is not None:
            image = self.augment(image)
        # resized in float (the evaluation resize, preprocess_vision) and shipped as uint8: half a level off at most
        return (vision_unit(image, self.size) * 255).round_().to(torch.uint8)

    def load_resized(self, image: torch.Tensor) -> torch.Tensor:
        """The worker side for an image stored with its shorter side already at ``size`` (uint8, as a packed store
        keeps it): augmented like :meth:`load`, then centre-cropped to (3,size,size) uint8. Rotation and flip act
        about the centre, so they commute with the resize; only the nearest-neighbour rotation grid differs."""
        if image.dtype != torch.uint8 or image.ndim != 3 or min(image.shape[-2:]) != self.size:
            raise ValueError(f"VisionTransform.load_resized expects a (3,H,W) uint8 image with shorter side "
                             f"{self.size}, got {image.dtype} {tuple(image.shape)}")
        if self.augment is not None:
            image = self.augment(image)
        return center_crop(image, self.size).contiguous()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(3,H,W) -> (3,size,size) float, CLIP-normalised."""
        return normalize(self.load(image).float() / 255.0, CLIP_MEAN, CLIP_STD)

    def __repr__(self) -> str:
        return f"VisionTransform(size={self.size}, train={self.train}, mean={CLIP_MEAN}, std={CLIP_STD})"
