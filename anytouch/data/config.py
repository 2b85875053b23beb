"""The ``data`` section of every run config."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Dict, Literal, Optional

from ..config import ConfigError

# The nine pre-training sources (spec 4.5), in the original's order.
PRETRAIN_SOURCES = ("tacquad", "of_real", "visgel", "cloth", "octopi", "tag", "ssvtp", "tvl", "ycb_slide")
# The linear-probe sets (spec 4.6; built in anytouch.data.probe_sets).
PROBE_NAMES = ("tag_material", "tag_roughness", "tag_hardness", "feel", "of1", "of2")


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
    ``synthetic`` for the built-in data. ``paths`` overrides one dataset's folder (values: folders, absolute or
    relative to ``root``); its keys are checked when the config is built (:func:`path_keys`): a pre-training source
    (``tag``, ``tacquad``, ... read by :func:`~anytouch.data.build_pretrain_set`) or a probe set (``tag_material``,
    ``feel``, ``of1``, ... read by the probes). ``repeats`` keys must be pre-training sources.
    """

    root: str = "tactile_datasets"
    # per-source repeat factors (0 = leave the source out)
    repeats: Dict[str, int] = field(default_factory=lambda: {s: 1 for s in PRETRAIN_SOURCES})
    paths: Dict[str, str] = field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "raise"  # skipped samples are reported at the end of each epoch
    num_workers: int = 4
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_dir: Optional[str] = None  # default: <root>/text and <root>/text_tacquad

    def __post_init__(self):
        # runs on every merge of a YAML file or override (dataclasses.replace), so a typo fails at config load
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"config key 'data.on_error' = {self.on_error!r}; expected one of ['raise', 'skip']")
        _check_keys("data.repeats", "source", self.repeats, PRETRAIN_SOURCES)
        _check_keys("data.paths", "dataset", self.paths, path_keys())


def path_keys() -> tuple:
    """The valid keys of ``data.paths``: the pre-training sources, the probe sets and any dataset registered with
    :func:`anytouch.data.register_dataset`."""
    from .registry import DATASETS  # registry imports this module

    return PRETRAIN_SOURCES + PROBE_NAMES + tuple(sorted(set(DATASETS) - set(PRETRAIN_SOURCES + PROBE_NAMES)))


def _check_keys(key: str, what: str, mapping: Dict, valid: tuple) -> None:
    unknown = sorted(set(mapping) - set(valid))
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{key}.{close[0]}'?" if close else ""
        raise ConfigError(f"{key} has unknown {what}(s) {unknown}{hint} (valid keys: {', '.join(valid)})")
