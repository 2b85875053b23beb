"""Training / evaluation transforms of AnyTouch (spec 4.1), on uint8 tensors, with torchvision.transforms.v2.

A clip ``(T, 3, H, W)`` is transformed as one batch, so the random flips and the colour-jitter factors are drawn
once per call and every frame of the clip gets the same augmentation (as the original's stacked-tensor pipeline).
Frames are converted to float in [0, 1] *before* resizing, so the evaluation path equals
:func:`anytouch.preprocess.preprocess_touch` / :func:`~anytouch.preprocess.preprocess_vision` exactly.

touch-train: Resize (size, size) bilinear -> RandomHorizontalFlip 0.5 -> RandomVerticalFlip 0.5 ->
ColorJitter(0.4, 0.4, 0.5, 0.3) -> ImageNet Normalize.  touch-test: Resize -> Normalize.
vision-train: RandomRotation(+-20 deg) -> RandomHorizontalFlip 0.5 -> shorter side to ``size`` (bicubic,
antialiased) -> CenterCrop -> CLIP Normalize.  vision-test: the same without the first two.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torchvision.transforms.v2 as T

from ..preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, preprocess_vision

__all__ = ["TouchTransform", "VisionTransform"]


def _check_frames(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} expects a (3,H,W) or (T,3,H,W) tensor, got {shape}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise TypeError(f"{what} expects uint8 (or float in [0,1]) frames, got dtype {x.dtype}")


class TouchTransform:
    """Touch frames ``(3,H,W)`` or a clip ``(T,3,H,W)`` (uint8) -> float, ImageNet-normalised, ``size`` x ``size``.

    Args:
        size: output side (aspect ratio is not kept, like the original).
        train: random flips (h and v, p=0.5) and colour jitter; ``False`` = resize + normalise only.
        jitter: (brightness, contrast, saturation, hue) for ColorJitter, or ``None`` for no jitter.
        antialias: antialiased resize (the original used ``False`` for stage-1 and cross-sensor video clips).
    """

    def __init__(
        self,
        size: int,
        train: bool = True,
        jitter: Optional[Sequence[float]] = (0.4, 0.4, 0.5, 0.3),
        antialias: bool = True,
    ):
        self.size = int(size)
        self.train = bool(train)
        steps = [
            T.ToDtype(torch.float32, scale=True),
            T.Resize((self.size, self.size), interpolation=T.InterpolationMode.BILINEAR, antialias=antialias),
        ]
        if self.train:
            steps += [T.RandomHorizontalFlip(0.5), T.RandomVerticalFlip(0.5)]
            if jitter is not None:
                if len(jitter) != 4:
                    raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {jitter!r}")
                steps.append(T.ColorJitter(*jitter))
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
        self.pipeline = T.Compose(steps)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(3,H,W) -> (3,size,size); (T,3,H,W) -> (T,3,size,size), one set of random parameters per call."""
        _check_frames(frames, "TouchTransform")
        return self.pipeline(frames)

    def __repr__(self) -> str:
        return f"TouchTransform(size={self.size}, train={self.train}, pipeline={self.pipeline})"


class VisionTransform:
    """A camera image ``(3,H,W)`` uint8 -> ``(3,size,size)`` float, CLIP-normalised (shorter side + centre crop).

    ``train=True`` first applies RandomRotation(+-20 deg, nearest, black fill) and RandomHorizontalFlip(0.5).
    """

    def __init__(self, size: int, train: bool = True):
        self.size = int(size)
        self.train = bool(train)
        self.augment = T.Compose([T.RandomRotation(20), T.RandomHorizontalFlip(0.5)]) if self.train else None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(3,H,W) -> (3,size,size)."""
        _check_frames(image, "VisionTransform")
        if image.ndim != 3:
            raise ValueError(f"VisionTransform expects one (3,H,W) image, got {tuple(image.shape)}")
        if self.augment is not None:
            image = self.augment(image)
        return preprocess_vision(image, self.size)

    def __repr__(self) -> str:
        return f"VisionTransform(size={self.size}, train={self.train}, mean={CLIP_MEAN}, std={CLIP_STD})"
