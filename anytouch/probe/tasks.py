"""The downstream tasks of the AnyTouch linear probes (docs/original/probes.md#probe-datasets, #protocol): what each
predicts, its loss and its metric.

Multi-class tasks use cross-entropy and top-1 accuracy; binary tasks (one logit) use BCE-with-logits and
``sigmoid(logit) > 0.5``, computed in fp32 (under fp16 autocast a tiny positive logit's sigmoid rounds to 0.5 and
would count as negative). The per-task hyper-parameters of the original scripts (pooling, sensor, lr, weight decay,
batch size) live in ``configs/probe_*.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F

from ..data import build_dataset
from ..data.config import DataConfig

__all__ = ["Task", "Recipe", "TASKS", "README_ACCURACY", "get_task", "per_sample_loss", "correct", "build_split",
           "folder_override"]


@dataclass(frozen=True)
class Task:
    """A probe task: ``name`` is also its dataset name for :func:`anytouch.data.build_dataset`.

    Attributes:
        num_classes: 2 for a binary task (one logit), else the number of classes.
        frames: touch frames per sample; 2 for Feel, whose head sees the concatenation [f(A), f(B)].
    """

    name: str
    num_classes: int
    frames: int = 1

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    @property
    def outputs(self) -> int:
        """Logits per sample: 1 for a binary task, else ``num_classes``."""
        return 1 if self.binary else self.num_classes

    def head_in(self, feature_dim: int) -> int:
        """Input width of the head for encoder features of ``feature_dim``."""
        return feature_dim * self.frames


@dataclass(frozen=True)
class Recipe:
    """How a head is trained (docs/original/probes.md#protocol), shared by both protocols.

    Attributes:
        pooling, sensor: the feature (``cls`` / ``global``; sensor id, -1 = universal).
        epochs, batch_size: ``batch_size`` is the effective batch over all processes.
        lr, weight_decay, betas, eps: AdamW over the head, weight decay on every head parameter.
        warmup_epochs, min_lr: the per-iteration schedule (the probes use 0 and 0: cosine from lr to 0).
        seed: batch order and augmentation (the loader seed); head_seed: head initialisation.
    """

    pooling: str
    sensor: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    betas: Tuple[float, float]
    eps: float
    warmup_epochs: float
    min_lr: float
    seed: int
    head_seed: int


TASKS = {
    "tag_material": Task("tag_material", 20),
    "tag_roughness": Task("tag_roughness", 2),
    "tag_hardness": Task("tag_hardness", 2),
    "feel": Task("feel", 2, frames=2),
    "of1": Task("of1", 7),
    "of2": Task("of2", 7),
}

# The numbers the original README reports for the released AnyTouch checkpoint (percent, best test epoch).
README_ACCURACY = {"tag_material": 80.82, "tag_roughness": 86.74, "tag_hardness": 94.68, "feel": 80.53,
                   "of1": 49.62, "of2": 76.02}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown probe task {name!r}; expected one of: {', '.join(TASKS)}")
    return TASKS[name]


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
    """Loss of every sample. logits: (..., B, outputs) (a leading grid axis is allowed); labels: (B,) -> (..., B)."""
    logits = logits.float()
    lead = logits.shape[:-2]
    labels = labels.to(logits.device).expand(*lead, labels.shape[0])
    if task.binary:
        return F.binary_cross_entropy_with_logits(logits[..., 0], labels.float(), reduction="none")
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return flat.view(labels.shape)


def correct(logits: torch.Tensor, labels: torch.Tensor, task: Task) -> torch.Tensor:
    """Per-sample hit (bool). logits: (..., B, outputs); labels: (B,) -> (..., B)."""
    labels = labels.to(logits.device)
    if task.binary:
        return (logits[..., 0].float().sigmoid() > 0.5) == labels.bool()
    return logits.argmax(dim=-1) == labels


# probe sets whose folder is another dataset's: data.paths.tag moves the TAG probes too
_FOLDER_OF = {"tag_material": "tag", "tag_roughness": "tag", "tag_hardness": "tag"}


def folder_override(data: DataConfig, name: str) -> Optional[str]:
    """``data.paths[name]``, else the entry of the dataset whose folder ``name`` reads (``tag_*`` -> ``tag``)."""
    if name in data.paths:
        return data.paths[name]
    return data.paths.get(_FOLDER_OF.get(name, ""))


def build_split(data: DataConfig, name: str, split: str, image_size: int, **options: Any):
    """``build_dataset(name, split)`` from the ``data`` section: its root, ``on_error``, the synthetic settings
    (``data.source == "synthetic"``) or the folder override (:func:`folder_override`); ``options`` go to the
    builder."""
    opts = dict(image_size=image_size, on_error=data.on_error, **options)
    if data.source == "synthetic":
        opts["synthetic"] = data.synthetic
    elif folder_override(data, name) is not None:
        opts["path"] = folder_override(data, name)
    return build_dataset(name, split, root=data.root, **opts)
