"""Shared plotting plumbing: the headless matplotlib backend, un-normalising touch tensors, saving PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["pyplot", "to_rgb", "save_png"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); a clear error when matplotlib is missing."""
    try:  # here, not at the top: the backend must be chosen before pyplot loads, and a missing package named
        import matplotlib
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install matplotlib (or pip install -e '.[viz]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    return plt


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (..., 3, H, W) -> (..., H, W, 3) float in [0, 1] for imshow."""
    m = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x.detach().float().cpu() * s + m).clamp(0, 1).movedim(-3, -1)


def save_png(fig, path: Union[str, Path], dpi: int = 80) -> Path:
    """Save ``fig`` as a PNG (creating parent folders) and close it. Returns the path."""
    plt = pyplot()
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"pictures are written as PNG; got output path {path} (use a .png name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
