"""What the stage-1 objective sees and produces (docs/original/architecture.md): inputs, masked inputs, reconstructions
and the predicted next frame, one row per sample, in the style of the MAE paper's figures (He et al. 2022)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import torch

from ..models import as_touch_mae
from ..sensors import SENSOR_IDS, SensorLike, sensor_tensor
from .common import pyplot, save_png, to_rgb

__all__ = ["mae_panels", "mae_errors", "mae_grid"]

MASKED_GREY = 0.35  # colour of removed patches in the "masked" column


@torch.no_grad()
def mae_panels(model, touch: torch.Tensor, sensor: SensorLike, mask_ratio: float = 0.75,
               seed: int = 0) -> Dict[str, torch.Tensor]:
    """Run the MAE once and return the pictures as (B, H, W, 3) float tensors in [0, 1].

    Args:
        model: a TouchMAE or AnyTouchModel (its touch branch is used).
        touch: ImageNet-normalised images (B, 3, H, W) or 4-frame clips (B, 4, 3, H, W) (3 input frames + the next).
        sensor: sensor spec for the batch (name, id, list or tensor).
        mask_ratio: fraction of patches removed.
        seed: seed of the masking noise (the same seed gives the same mask).
    Returns:
        ``input`` (the last input frame), ``masked`` (removed patches grey), ``reconstruction`` (predicted pixels on
        removed patches, input pixels on kept ones), and for clips also ``next`` (the true 4th frame) and
        ``predicted_next`` (the video head's 4th frame, predicted everywhere). Plus ``mask`` (B, H, W), 1 = removed.
    """
    mae = as_touch_mae(model)
    was_training = mae.training
    mae.eval()
    dev = next(mae.parameters()).device
    touch = touch.to(dev)
    b = touch.shape[0]
    noise = torch.rand(b, mae.num_patches, generator=torch.Generator().manual_seed(seed)).to(dev)
    out = mae(touch, sensor, mask_ratio=mask_ratio, noise=noise)
    mae.train(was_training)
    p = mae.arch.touch.patch_size
    mask = out["mask"].float()  # (B, N), 1 = removed
    pix_mask = mae.unpatchify(mask.unsqueeze(-1).expand(-1, -1, p * p * 3))[:, 0]  # (B, H, W)
    video = touch.ndim == 5
    pred = mae.unpatchify(out["pred"])  # (B, 3, H, W) or (B, T, 3, H, W), normalised pixels
    last = mae.encoder.num_frames - 1
    frame = touch[:, last] if video else touch
    recon = pred[:, last] if video else pred
    m = pix_mask.unsqueeze(1)  # (B, 1, H, W)
    panels = {
        "input": to_rgb(frame),
        "masked": to_rgb(frame) * (1 - pix_mask.cpu()).unsqueeze(-1) + MASKED_GREY * pix_mask.cpu().unsqueeze(-1),
        "reconstruction": to_rgb(recon * m + frame * (1 - m)),
        "mask": pix_mask.cpu(),
    }
    if video:
        panels["next"] = to_rgb(touch[:, -1])
        panels["predicted_next"] = to_rgb(pred[:, -1])
    return panels


def mae_errors(panels: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Per-row errors of :func:`mae_panels`' pictures, mean squared error in the displayed RGB ([0, 1]) units.

    Returns (B,) tensors: ``reconstruction`` (over the removed patches only; the kept ones are copied), and for
    clips ``prediction`` (predicted vs true next frame) and ``copy_last`` (the last input frame taken as the
    prediction: the trivial baseline a useful prediction must beat).
    """
    m = panels["mask"].unsqueeze(-1)  # (B, H, W, 1), 1 = removed

    def mse(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.expand_as(a)
        return ((a - b) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1)

    out = {"reconstruction": mse(panels["reconstruction"], panels["input"], m)}
    if "next" in panels:
        whole = torch.ones_like(m)
        out["prediction"] = mse(panels["predicted_next"], panels["next"], whole)
        out["copy_last"] = mse(panels["input"], panels["next"], whole)
    return out


def _sensor_names(sensor: SensorLike, rows: int) -> list:
    slots = 16  # any count above the named ids: the universal id -1 becomes the last slot, -1 % slots
    names = {v % slots: k for k, v in SENSOR_IDS.items()}
    return [names.get(i, f"sensor {i}") for i in sensor_tensor(sensor, rows, slots).tolist()]


_TITLES = {"input": "input (last frame)", "masked": "masked input", "reconstruction": "reconstruction",
           "next": "true next frame", "predicted_next": "predicted next frame"}


def mae_grid(model, touch: torch.Tensor, sensor: SensorLike, path: Union[str, Path], mask_ratio: float = 0.75,
             seed: int = 0, max_rows: int = 6, title: str = "") -> Path:
    """Save the grid of :func:`mae_panels` (one row per sample, at most ``max_rows``) as a PNG. Returns the path.

    Each row is labelled with its sensor, and the reconstruction / prediction panels with their error
    (:func:`mae_errors`; the predicted next frame also with the copy-the-last-frame baseline's)."""
    sensor = sensor if not isinstance(sensor, (list, tuple, torch.Tensor)) else sensor[:max_rows]
    panels = mae_panels(model, touch[:max_rows], sensor, mask_ratio, seed)
    errors = mae_errors(panels)
    cols = [k for k in _TITLES if k in panels]
    rows = panels["input"].shape[0]
    names = _sensor_names(sensor, rows)
    labels = {"reconstruction": lambda r: f"MSE {errors['reconstruction'][r]:.4f} (masked)",
              "predicted_next": lambda r: (f"MSE {errors['prediction'][r]:.4f}\n"
                                           f"(copy last frame: {errors['copy_last'][r]:.4f})")}
    plt = pyplot()
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.9 * len(cols), 2.3 * rows), squeeze=False)
    for r in range(rows):
        for c, key in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(panels[key][r].numpy(), interpolation="nearest")  # the model's pixels, not a smoothed upscale
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(_TITLES[key], fontsize=9)
            if c == 0:
                ax.set_ylabel(names[r], fontsize=9)
            if key in labels:
                ax.set_xlabel(labels[key](r), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
