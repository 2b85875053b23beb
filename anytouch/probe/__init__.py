"""Evaluation of AnyTouch touch encoders (Feng et al., ICLR 2025): linear probes (docs/original/probes.md#protocol) with
the original's protocol (:mod:`.official`) or on cached features with a hyper-parameter grid (:mod:`.cached`),
touch->text zero-shot classification (:mod:`.zeroshot`) and cross-sensor retrieval (:mod:`.retrieval`).

Entry points: ``python -m anytouch.probe --config configs/probe_<task>.yaml ...``,
``python -m anytouch.probe.zeroshot ...``, ``python -m anytouch.probe.retrieval ...``.
"""
from .cached import fit_grid
from .features import encode, extract_features
from .official import fit_official
from .runner import ProbeRunner, load_probe_encoder
from .selection import best_on_test, last_epoch, val_selected
from .tasks import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "get_task", "encode", "extract_features", "fit_official", "fit_grid", "ProbeRunner",
           "load_probe_encoder", "best_on_test", "last_epoch", "val_selected"]
