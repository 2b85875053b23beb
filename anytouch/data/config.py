"""The ``data`` section of every run config."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Dict, Literal, Optional

from ..config import ConfigError
from .registry import PRETRAIN_SOURCES, PROBE_NAMES, names
from .synthetic import SyntheticConfig

__all__ = ["DataConfig", "SyntheticConfig", "PRETRAIN_SOURCES", "PROBE_NAMES", "path_keys"]
SOURCES = ("files", "synthetic")  # the values of data.source
STORES = ("raw", "packed")  # the values of data.store


@dataclass
class DataConfig:
    """Where data lives and how sources are mixed.

    ``source`` picks the data: ``files`` (the folder ``root``, laid out like the original ``tactile_datasets/``,
    docs/original/data.md#per-dataset-layout) or ``synthetic`` (every dataset's built-in synthetic twin, set by
    ``data=synthetic``). ``paths`` overrides one dataset's folder (values: folders, absolute or relative to ``root``);
    its keys are checked when the config is
    built (:func:`path_keys`): a pre-training source (``tag``, ``tacquad``, ... read by
    :func:`~anytouch.data.build_pretrain_set`) or a probe set (``tag_material``, ``feel``, ``of1``, ... read by the
    probes). ``repeats`` keys must be registered pre-training sources. ``store=packed`` reads the pre-training sources
    from the packed stores ``anytouch pack`` wrote (:mod:`anytouch.data.packed`; frames at model resolution, camera
    images and text for stage 2).
    """

    source: Literal["files", "synthetic"] = "files"
    root: str = "tactile_datasets"
    # per-source repeat factors (0 = leave the source out)
    repeats: Dict[str, int] = field(default_factory=lambda: {s: 1 for s in PRETRAIN_SOURCES})
    paths: Dict[str, str] = field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "raise"  # skipped samples are reported at the end of each epoch
    # DataLoader workers and batches prefetched per worker, per loader; None = from the CPUs this process may use
    # (anytouch.engine.data.default_workers / default_prefetch)
    num_workers: Optional[int] = None
    prefetch_factor: Optional[int] = None
    store: Literal["raw", "packed"] = "raw"  # packed: read <packed_dir>/<source> (anytouch pack) instead of the tree
    packed_dir: Optional[str] = None  # default: <root>/packed
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_dir: Optional[str] = None  # default: <root>/text and <root>/text_tacquad

    def __post_init__(self):
        # runs on every merge of a YAML file or override (dataclasses.replace), so a typo fails at config load
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"config key 'data.on_error' = {self.on_error!r}; expected one of ['raise', 'skip']")
        if self.store not in STORES:
            raise ConfigError(f"config key 'data.store' = {self.store!r}; expected one of {list(STORES)}")
        if self.store == "packed" and self.source == "synthetic":
            raise ConfigError("data.store=packed reads stores packed from a data tree (anytouch pack); the synthetic "
                              "data is rendered on the fly: use data.store=raw with data.source=synthetic")
        for key in ("num_workers", "prefetch_factor"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < (0 if key == "num_workers" else 1)):
                raise ConfigError(f"config key 'data.{key}' = {value!r}; expected null (automatic) or an integer "
                                  f">= {0 if key == 'num_workers' else 1}")
        if self.source not in SOURCES:
            raise ConfigError(f"config key 'data.source' = {self.source!r}; expected one of {list(SOURCES)}")
        if self.root == "synthetic":
            raise ConfigError("data.root='synthetic' is not a data root: the built-in data is chosen with "
                              "data.source=synthetic (or the group data=synthetic)")
        _check_keys("data.repeats", "source", self.repeats, names("pretrain"))
        _check_keys("data.paths", "dataset", self.paths, path_keys())


def path_keys() -> tuple:
    """The valid keys of ``data.paths``: the pre-training sources, the probe sets and any dataset registered with
    :func:`anytouch.data.registry.register`."""
    return PRETRAIN_SOURCES + PROBE_NAMES + tuple(sorted(set(names()) - set(PRETRAIN_SOURCES + PROBE_NAMES)))


def _check_keys(key: str, what: str, mapping: Dict, valid: tuple) -> None:
    unknown = sorted(set(mapping) - set(valid))
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{key}.{close[0]}'?" if close else ""
        raise ConfigError(f"{key} has unknown {what}(s) {unknown}{hint} (valid keys: {', '.join(valid)})")
