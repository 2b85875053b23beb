"""Data for AnyTouch (ICLR 2025): the pre-training loaders of spec 4, the cross-sensor sampler of spec 3.3, the
transforms of spec 4.1 and the entry points of docs/design.md (``build_dataset``, ``build_pretrain_set``).

Importing the package registers the nine pre-training sources (``registry``) and the probe sets (``probe_sets``).
"""
from .config import PRETRAIN_SOURCES, DataConfig
from .cross import CrossSensorDataset
from .io import DataError, read_image
from .registry import DATASETS, build_dataset, build_pretrain_set, register_dataset
from .skip import SkipErrors, format_skipped, skipped_report
from .transforms import TouchTransform, VisionTransform
from .probe_sets import PROBE_NAMES  # importing the module registers tag_material ... of2

__all__ = [
    "DataConfig", "PRETRAIN_SOURCES", "PROBE_NAMES", "DataError", "read_image", "TouchTransform", "VisionTransform",
    "CrossSensorDataset", "SkipErrors", "skipped_report", "format_skipped",
    "DATASETS", "register_dataset", "build_dataset", "build_pretrain_set",
]
