"""Touch augmentation split in two: parameters drawn per sample on the CPU, pixels changed per batch on the device.

The touch-train recipe (see :class:`anytouch.data.transforms.TouchTransform`) is, per sample (a clip shares one
draw for all its frames): resize to ``size`` x ``size`` (bilinear, antialiased), horizontal flip with p=0.5,
vertical flip with p=0.5, colour jitter -- brightness factor U(0.6, 1.4), contrast U(0.6, 1.4), saturation
U(0.5, 1.5), hue shift U(-0.3, 0.3), applied in a random order (a uniform permutation of the four) -- then ImageNet
normalisation. Jitter operates on float frames in [0, 1] and clamps to [0, 1] after every step.

* Workers: :func:`load_touch_uint8` decodes and resizes in uint8 (torchvision's antialiased bilinear kernel, the
  same filter as the float path, rounded to 8 bits), and :func:`draw_touch_params` draws the parameters from
  torch's global RNG in the order torchvision's transforms draw them, so under the loaders' per-sample seed
  (:class:`anytouch.engine.data.EpochSeeded`) a sample gets exactly the parameters the float pipeline gave it.
* Device: :func:`apply_touch_aug` takes the collated uint8 batch (B,3,H,W) or (B,T,3,H,W) after the host-to-device
  copy plus the stacked parameters (still on the CPU) and applies flips, jitter and normalisation in one call.
  Identity parameters (evaluation) reduce it to normalisation, so training and evaluation share one path.
* :func:`reference_touch_aug` applies one sample's parameters with torchvision's functional ops; tests hold the
  batched result to it.

Resizing in uint8 moves a pixel by at most one 8-bit level against the float resize of
:func:`anytouch.preprocess.preprocess_touch`: at most 1/255/0.225 = 0.0175 after ImageNet normalisation.

Parameter vector layout (float32, ``AUG_DIM`` entries): ``hflip, vflip`` (0/1), ``brightness, contrast,
saturation, hue`` factors, then the jitter order (a permutation of 0..3: brightness, contrast, saturation, hue).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torchvision.transforms.v2.functional as TF

from ..preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, resize_uint8
from .io import DataError, read_image

__all__ = ["AUG_DIM", "IDENTITY", "DEFAULT_JITTER", "TOUCH_KEYS", "jitter_ranges", "draw_touch_params",
           "apply_touch_aug", "reference_touch_aug", "resize_uint8", "load_touch_uint8", "touch_on_device",
           "batch_to_device", "stack_touch"]

DEFAULT_JITTER = (0.4, 0.4, 0.5, 0.3)  # touch-train ColorJitter strengths (brightness, contrast, saturation, hue)
# the keys of a sample that hold touch frames; each comes with its parameters under "<key>_aug"
TOUCH_KEYS = ("touch", "anchor", "positive", "negative")

AUG_DIM = 10
IDENTITY = torch.tensor([0, 0, 1, 1, 1, 0, 0, 1, 2, 3], dtype=torch.float32)
_FLIPS, _FACTORS, _ORDER = slice(0, 2), slice(2, 6), slice(6, 10)
_GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def jitter_ranges(jitter: Sequence[float]):
    """(brightness, contrast, saturation, hue) strengths -> the four (low, high) ranges ColorJitter draws from."""
    if len(jitter) != 4:
        raise ValueError(f"jitter must be (brightness, contrast, saturation, hue), got {jitter!r}")
    b, c, s, h = (float(v) for v in jitter)
    if min(b, c, s) < 0 or not 0 <= h <= 0.5:
        raise ValueError(f"jitter strengths must be >= 0 and hue in [0, 0.5], got {jitter!r}")
    return [(max(0.0, 1 - v), 1 + v) for v in (b, c, s)] + [(-h, h)]


def draw_touch_params(train: bool = True, jitter: Optional[Sequence[float]] = DEFAULT_JITTER) -> torch.Tensor:
    """One sample's augmentation parameters, an ``(AUG_DIM,)`` float32 vector, drawn from torch's global RNG.

    The draws follow torchvision's RandomHorizontalFlip, RandomVerticalFlip and ColorJitter call for call, so under
    the same seed the parameters equal those TouchTransform(train=True) applies. ``train=False`` draws nothing and
    returns the identity.
    """
    p = IDENTITY.clone()
    if not train:
        return p
    p[0] = float(torch.rand(1) < 0.5)
    p[1] = float(torch.rand(1) < 0.5)
    if jitter is not None:
        ranges = jitter_ranges(jitter)
        p[_ORDER] = torch.randperm(4).float()
        for k, (lo, hi) in enumerate(ranges):
            p[2 + k] = float(torch.empty(1).uniform_(lo, hi).item())
    return p


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return (x * ratio + other * (1.0 - ratio)).clamp_(0.0, 1.0)


def _grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=-3)
    return (r * _GREY[0] + g * _GREY[1] + b * _GREY[2]).unsqueeze(-3)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    # torchvision's formulation (after Pillow), so that results match the reference bit for bit where possible
    r, g, _ = x.unbind(dim=-3)
    minc, maxc = torch.aminmax(x, dim=-3)
    eqc = maxc == minc
    span = maxc - minc
    ones = torch.ones_like(maxc)
    s = span / torch.where(eqc, ones, maxc)
    rc, gc, bc = ((maxc.unsqueeze(-3) - x) / torch.where(eqc, ones, span).unsqueeze(-3)).unbind(dim=-3)
    neq_r, eq_g = maxc != r, maxc == g
    hg = (rc + 2.0 - bc) * (eq_g & neq_r)
    hr = (bc - gc) * ~neq_r
    hb = (gc + 4.0 - rc) * (neq_r & ~eq_g)
    h = ((hr + hg + hb) * (1.0 / 6.0) + 1.0).fmod(1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(dim=-3)
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i.to(torch.int64).remainder_(6)
    q = ((1.0 - s * f) * v).clamp_(0.0, 1.0)
    t = ((s * f + (1.0 - s)) * v).clamp_(0.0, 1.0)
    p = ((1.0 - s) * v).clamp_(0.0, 1.0)
    vpqt = torch.stack((v, p, q, t), dim=-3)
    select = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], device=x.device)
    return vpqt.gather(-3, select[:, i].moveaxis(0, -3))


def _adjust(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """Colour op ``op`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with per-sample ``factor`` (n,1,1,1,1)."""
    if op == 0:
        return (x * factor).clamp_(0.0, 1.0)
    if op == 1:  # the mean grey level of each frame (not of the clip), as torchvision on a (T,3,H,W) stack
        return _blend(x, _grey(x).mean(dim=(-3, -2, -1), keepdim=True), factor)
    if op == 2:
        return _blend(x, _grey(x), factor)
    hsv = _rgb_to_hsv(x)
    h, s, v = hsv.unbind(dim=-3)
    return _hsv_to_rgb(torch.stack(((h + factor[..., 0, :, :]).remainder(1.0), s, v), dim=-3))


def _jitter_grouped(x: torch.Tensor, params: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Jitter each group of samples sharing a jitter order with the ops in that order: every op once per sample
    (least arithmetic), but up to 24 groups of small kernels."""
    dev, orders = x.device, params[:, _ORDER].long()
    out = x
    for order in torch.unique(orders[active], dim=0):
        idx = torch.nonzero(active & (orders == order).all(dim=1)).flatten()
        full = len(idx) == len(params)
        idx_dev = idx.to(dev, non_blocking=True)
        sub = x if full else x.index_select(0, idx_dev)
        factors = params[idx, _FACTORS].to(dev, non_blocking=True).view(-1, 4, 1, 1, 1, 1)
        for op in order.tolist():
            sub = _adjust(sub, op, factors[:, op])
        out = sub if full else (out if out is not x else x.clone()).index_copy_(0, idx_dev, sub)
    return out


def _jitter_masked(x: torch.Tensor, params: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Jitter the whole batch at each of the four order positions, every op computed for every sample and the one
    due at that position selected: 4x the arithmetic but a fixed, small number of large kernels (accelerators)."""
    dev = x.device
    factors = params[:, _FACTORS].to(dev, non_blocking=True).view(-1, 4, 1, 1, 1, 1)
    orders = params[:, _ORDER].to(dev, non_blocking=True).view(-1, 4, 1, 1, 1, 1)
    keep = ~active.to(dev, non_blocking=True).view(-1, 1, 1, 1, 1)
    for k in range(4):
        op = orders[:, k]
        y = torch.where(op == 0, _adjust(x, 0, factors[:, 0]), torch.where(
            op == 1, _adjust(x, 1, factors[:, 1]), torch.where(
                op == 2, _adjust(x, 2, factors[:, 2]), _adjust(x, 3, factors[:, 3]))))
        x = torch.where(keep, x, y)  # samples without jitter skip the hue round trip (it is not exact)
    return x


def apply_touch_aug(frames: torch.Tensor, params: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, grouped: Optional[bool] = None) -> torch.Tensor:
    """Flip, colour-jitter and normalise a batch on its own device, each sample with its own parameters.

    Args:
        frames: uint8 (B,3,H,W) images or (B,T,3,H,W) clips, on any device (a clip's frames share one draw).
        params: (B, AUG_DIM) float parameters from :func:`draw_touch_params`, on the CPU (the collated batch
            before the copy): every decision is taken there, so no device-to-host sync happens.
        grouped: jitter samples grouped by jitter order (the default on the CPU) or the whole batch at once with
            per-sample selection (the default elsewhere, fewer and larger kernels); both equal the reference.

    Returns:
        float32 tensor of the frames' shape, normalised with ``mean`` / ``std``.
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim not in (4, 5) or frames.shape[-3] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"apply_touch_aug expects (B,3,H,W) or (B,T,3,H,W) frames, got {shape}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"apply_touch_aug expects uint8 frames, got {frames.dtype}")
    if params.shape != (frames.shape[0], AUG_DIM) or params.device.type != "cpu":
        raise ValueError(f"apply_touch_aug expects CPU params of shape ({frames.shape[0]}, {AUG_DIM}), got "
                         f"{tuple(params.shape)} on {params.device}")
    dev = frames.device
    x = frames if frames.ndim == 5 else frames.unsqueeze(1)  # (B, T, 3, H, W)
    flips = params[:, _FLIPS].bool()
    for k, dim in ((0, -1), (1, -2)):
        if flips[:, k].any():
            mask = flips[:, k].to(dev, non_blocking=True).view(-1, 1, 1, 1, 1)
            x = torch.where(mask, x.flip(dim), x)
    x = x.float().div_(255.0)
    active = (params[:, _FACTORS] != IDENTITY[_FACTORS]).any(dim=1)
    if active.any():
        if grouped is None:
            grouped = dev.type == "cpu"
        x = _jitter_grouped(x, params, active) if grouped else _jitter_masked(x, params, active)
    m = torch.tensor(mean, device=dev).view(3, 1, 1)
    s = torch.tensor(std, device=dev).view(3, 1, 1)
    x = (x - m) / s
    return x if frames.ndim == 5 else x.squeeze(1)


def reference_touch_aug(frames: torch.Tensor, params: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                        std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """One sample (3,H,W) or clip (T,3,H,W), uint8, augmented with torchvision's functional ops (the reference)."""
    x = TF.to_dtype(frames, torch.float32, scale=True)
    if params[0]:
        x = TF.horizontal_flip(x)
    if params[1]:
        x = TF.vertical_flip(x)
    factors = params[_FACTORS].tolist()
    if factors != IDENTITY[_FACTORS].tolist():
        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for op in params[_ORDER].long().tolist():
            x = ops[op](x, factors[op])
    return TF.normalize(x, list(mean), list(std))


def load_touch_uint8(paths: Sequence[str], size: int, antialias: bool = True) -> torch.Tensor:
    """The worker side: decode the frames of one sample and resize them in uint8 -> (T,3,size,size) uint8.

    Raises:
        DataError: a frame is missing or unreadable (from :func:`~anytouch.data.io.read_image`).
            Also raised when the frames of one clip differ in size.
    """
    frames = [read_image(p, contiguous=False) for p in paths]
    if len({f.shape for f in frames}) != 1:
        raise DataError("frames of one clip differ in size: "
                        + ", ".join(f"{p} {tuple(f.shape)}" for p, f in zip(paths, frames)), paths[0])
    return torch.stack([resize_uint8(f, size, antialias) for f in frames])  # stack after the resize: less to copy


def touch_on_device(frames: torch.Tensor, params: torch.Tensor, device) -> torch.Tensor:
    """Copy collated uint8 ``frames`` to ``device`` (non-blocking: from pinned memory the copy overlaps) and apply
    their per-sample ``params`` there -> float model input."""
    return apply_touch_aug(frames.to(device, non_blocking=True), params)


def batch_to_device(batch: dict, device) -> dict:
    """A collated loader batch -> model inputs on ``device``, the device side of the data path.

    Touch frames (:data:`TOUCH_KEYS` with their ``<key>_aug`` parameters) are flipped, jittered and normalised there
    (:func:`apply_touch_aug`); a uint8 camera image ``vision`` (geometric augmentation already done by the worker)
    is CLIP-normalised there with identity parameters. Other tensors are copied; non-tensors are kept as they are.
    """
    out = {}
    for key, value in batch.items():
        if key.endswith("_aug") and key[:-4] in batch:
            continue
        if key in TOUCH_KEYS and f"{key}_aug" in batch:
            out[key] = touch_on_device(value, batch[f"{key}_aug"], device)
        elif key == "vision" and isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
            out[key] = apply_touch_aug(value.to(device, non_blocking=True), IDENTITY.expand(len(value), -1),
                                       CLIP_MEAN, CLIP_STD)
        else:
            out[key] = value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
    return out


def stack_touch(samples: Sequence[dict], device="cpu") -> torch.Tensor:
    """The ``touch`` of a few samples (outside a DataLoader: figures, caches) -> one float model batch on ``device``.

    Samples of the package's datasets (uint8 frames with ``touch_aug``) go through :func:`touch_on_device`; samples
    without ``touch_aug`` must hold model input already (e.g. :func:`~anytouch.preprocess.preprocess_touch` output).
    """
    if not all("touch_aug" in s for s in samples):
        return torch.stack([s["touch"] for s in samples]).to(device)
    return touch_on_device(torch.stack([s["touch"] for s in samples]), torch.stack([s["touch_aug"] for s in samples]),
                           device)
