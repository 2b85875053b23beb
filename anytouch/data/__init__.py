"""Data for AnyTouch (ICLR 2025): the pre-training loaders of docs/original/data.md, the cross-sensor sampler of
docs/original/recipe.md#stage-2-cross-sensor-matching, the transforms of docs/original/data.md#transforms and the entry
points of docs/design.md (``build_dataset``, ``build_pretrain_set``).

Every dataset is declared once, by a :class:`DatasetSpec` in its own module; :mod:`anytouch.data.catalog` lists the
package's own, and :func:`register` adds another.
"""
from .build import build_dataset, build_pretrain_set
from .config import PRETRAIN_SOURCES, PROBE_NAMES, DataConfig, SyntheticConfig
from .cross import CrossSensorDataset
from .io import DataError, read_image
from .registry import DATASETS, register
from .skip import SkipErrors, format_skipped, skipped_report
from .spec import BenchTwin, DatasetSpec, ProbeTwin, SyntheticTwin
from .transforms import TouchTransform, VisionTransform

__all__ = [
    "DataConfig", "SyntheticConfig", "PRETRAIN_SOURCES", "PROBE_NAMES", "DataError", "read_image", "TouchTransform",
    "VisionTransform", "CrossSensorDataset", "SkipErrors", "skipped_report", "format_skipped",
    "DATASETS", "DatasetSpec", "SyntheticTwin", "ProbeTwin", "BenchTwin", "register", "build_dataset", "build_pretrain_set",
]
