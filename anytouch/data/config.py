"""The ``data`` section of every run config."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

# The nine pre-training sources (spec 4.5), in the original's order.
PRETRAIN_SOURCES = ("tacquad", "of_real", "visgel", "cloth", "octopi", "tag", "ssvtp", "tvl", "ycb_slide")


@dataclass
class SyntheticConfig:
    """Built-in procedurally rendered tactile data (used when ``data.root == "synthetic"``)."""

    num_samples: int = 256  # per training set / per probe split
    probe_samples: int = 512  # per probe split (train / test) of the synthetic probe sets
    cross_samples: int = 32  # TacQuad anchors of the cross-sensor sets (one cross batch of the paper recipe)
    seed: int = 0
    render_size: int = 64  # frames are rendered at this size, then resized like real data


@dataclass
class DataConfig:
    """Where data lives and how sources are mixed.

    ``root`` is the folder laid out like the original ``tactile_datasets/`` (spec 4.3), or the special value
    ``synthetic`` for the built-in data. ``paths`` overrides one dataset's folder (keys: dataset names such as
    ``tag``, ``tacquad``; values: folders, absolute or relative to ``root``).
    """

    root: str = "tactile_datasets"
    # per-source repeat factors (0 = leave the source out)
    repeats: Dict[str, int] = field(default_factory=lambda: {s: 1 for s in PRETRAIN_SOURCES})
    paths: Dict[str, str] = field(default_factory=dict)
    on_error: str = "raise"  # "raise" or "skip" (skipped samples are reported at the end of each epoch)
    num_workers: int = 4
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_dir: Optional[str] = None  # default: <root>/text and <root>/text_tacquad
