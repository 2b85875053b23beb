"""Shared pieces of the converters: the conversion report and the final key-set / shape check.

Every converter ends with :func:`check_state_dict` against the state dict of the module it targets (nanoGPT's
``from_pretrained`` pattern): missing, unexpected and mis-shaped keys are errors that name the key (and the source
key it came from); keys deliberately not loaded are listed in the :class:`ConversionReport` with the reason.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

import torch
import torch.nn as nn

from ..models.config import ARCH_PRESETS, ArchConfig, get_arch

M = TypeVar("M", bound=nn.Module)

__all__ = [
    "CheckpointMismatchError", "ConversionReport", "ConfigLike", "check_state_dict", "explicit_arch", "fill_fresh",
    "layer_indices", "on_meta", "load_assign",
]

# ``config=`` of the loaders: an ArchConfig, a preset name, an ArchConfig dict, or a CLIP config.json (or its folder)
ConfigLike = Union[None, str, Path, ArchConfig, Mapping[str, Any]]

log = logging.getLogger("anytouch.checkpoint")


class CheckpointMismatchError(ValueError):
    """Converted weights do not fit the target module (another architecture, or a damaged file)."""


@dataclass
class ConversionReport:
    """What a conversion did, for logging and inspection.

    Attributes:
        source: the file (or a description of the input).
        format: the detected input format, e.g. ``"hf_clip"``, ``"original_stage2"``.
        ignored: ``(source key, reason)`` for every input key that was deliberately not loaded.
        fresh: ``(target key, reason)`` for every target key that keeps its fresh initialisation.
        notes: other facts worth knowing (inferred sizes, LoRA merges, overwritten values).
    """

    source: str
    format: str
    ignored: List[Tuple[str, str]] = field(default_factory=list)
    fresh: List[Tuple[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def ignore(self, key: str, reason: str) -> None:
        self.ignored.append((key, reason))

    def ignored_keys(self) -> List[str]:
        return [k for k, _ in self.ignored]

    def fresh_keys(self) -> List[str]:
        return [k for k, _ in self.fresh]

    def summary(self, max_keys: int = 12) -> str:
        """A few human-readable lines; key lists are grouped by reason and truncated to ``max_keys``."""
        lines = [f"loaded {self.source} as {self.format}"]
        for title, items in (("ignored", self.ignored), ("kept fresh", self.fresh)):
            groups: Dict[str, List[str]] = {}
            for k, why in items:
                groups.setdefault(why, []).append(k)
            for why, keys in groups.items():
                shown = ", ".join(keys[:max_keys]) + (f", ... ({len(keys)} keys)" if len(keys) > max_keys else "")
                lines.append(f"  {title}: {shown} -- {why}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def log(self) -> None:
        log.info("%s", self.summary())


def explicit_arch(config: ConfigLike) -> Optional[ArchConfig]:
    """An ArchConfig / dict / preset name is used as is; ``None`` or a path (a CLIP config.json) gives None."""
    if isinstance(config, (ArchConfig, Mapping)) or (isinstance(config, str) and config in ARCH_PRESETS):
        return get_arch(config)
    return None


def layer_indices(keys, prefix: str) -> List[int]:
    """Sorted distinct integers ``i`` over keys of the form ``prefix + "i." + rest``."""
    out = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return sorted(out)


def _shape(x) -> Tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(x)


def check_state_dict(
    converted: Mapping[str, torch.Tensor],
    expected: Mapping[str, object],
    source: str,
    origin: Optional[Mapping[str, str]] = None,
    hint: str = "the checkpoint is for another architecture (pass the matching config=)",
) -> None:
    """Check that ``converted`` has exactly the keys of ``expected`` with the same shapes.

    Args:
        converted: the converted state dict (target key -> tensor).
        expected: the target module's state dict (or target key -> shape).
        source: the file name, for messages.
        origin: target key -> source key, so that messages can name the key in the file too.
        hint: what a shape mismatch most likely means, appended to its message.

    Raises:
        CheckpointMismatchError: naming the first mis-shaped key (in the target's order) with both shapes, or the
            missing / unexpected keys.
    """
    origin = origin or {}
    for k, ref in expected.items():
        if k in converted and _shape(converted[k]) != _shape(ref):
            src = f" (from {origin[k]!r})" if k in origin and origin[k] != k else ""
            raise CheckpointMismatchError(
                f"{source}: key {k!r}{src} has shape {_shape(converted[k])} in the checkpoint but the model expects "
                f"{_shape(ref)}; {hint}"
            )
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            shown = [f"{k} (from {origin[k]!r})" if k in origin and origin[k] != k else k for k in unexpected[:8]]
            parts.append(f"unexpected {len(unexpected)} key(s): {shown}{' ...' if len(unexpected) > 8 else ''}")
        raise CheckpointMismatchError(f"{source}: converted weights do not match the model: " + "; ".join(parts))


def fill_fresh(
    converted: Dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], keys, reason: str, report: ConversionReport
) -> None:
    """Copy ``target[k]`` (the module's fresh initialisation) into ``converted`` for each ``k`` in ``keys``."""
    for k in keys:
        if k in converted:
            raise KeyError(f"internal error: {k!r} is both converted and kept fresh")
        converted[k] = target[k]
        report.fresh.append((k, reason))


def on_meta(factory: Callable[[], M]) -> M:
    """Build a module on the meta device (no memory, no random init), to be filled by :func:`load_assign`."""
    with torch.device("meta"):
        return factory()


def load_assign(model: M, state_dict: Mapping[str, torch.Tensor], source: str,
                origin: Optional[Mapping[str, str]] = None, **check_kw) -> M:
    """Check ``state_dict`` against ``model`` and load it strictly by assignment.

    Works for a module built with :func:`on_meta` as well as a materialised one. Each tensor is cast to the dtype the
    module declares (e.g. a float16 CLIP file into a float32 model) and copied into ordinary memory, so the module
    never aliases a memory-mapped checkpoint (rewriting that file later cannot change or crash the model).
    """
    expected = model.state_dict()
    check_state_dict(state_dict, expected, source, origin, **check_kw)
    sd = {k: v.to(dtype=expected[k].dtype, copy=True, memory_format=torch.contiguous_format)
          for k, v in state_dict.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    return model
