"""Probe files written by the AnyTouch 2 downstream scripts (TAG, Cloth, ToucHD-Force; docs/anytouch2.md).

Such a file is ``{"model": {"tactile_model.*" (the encoder), "head.*"}, "optimizer", "epoch", "scaler", "args"}``
with ``args`` an ``argparse.Namespace`` (the only pickled class allowed on load). The head kind is read from the
keys and cross-checked with ``args.pooling``: ``head.pooler.*`` is an attentive head over all raw tokens (pooling
``none``; ``head.probe.2`` present = the ToucHD force MLP, else the Cloth Linear), ``head.weight`` a Linear on the
projected CLS (``cls``, in = projection size) or on the mean raw token of the last tube (``last``, in = width).
The attentive heads have 16 attention heads in those scripts; head counts are not in the file.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import torch.nn as nn

from ..models.anytouch2_heads import AnyTouch2Probe, AttentiveHead
from . import anytouch2
from .common import CheckpointMismatchError, load_assign
from .io import ORIGINAL_ALLOW, safe_load

__all__ = ["detect_probe", "load_probe", "probe_from_content"]

_HEAD = "head."
_UPSTREAM_POOLER_HEADS = 16  # the TAG / Cloth / ToucHD probe scripts' attentive poolers


def detect_probe(obj: Any) -> bool:
    """True for an upstream probe file: a ``model`` dict holding an AnyTouch 2 encoder and ``head.*`` keys."""
    sd = obj.get("model") if isinstance(obj, Mapping) else None
    return (isinstance(sd, Mapping) and any(isinstance(k, str) and k.startswith(_HEAD) for k in sd)
            and anytouch2.detect(sd))


def _args(obj: Mapping) -> Dict[str, Any]:
    args = obj.get("args")
    if args is None:
        return {}
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, Mapping):
        return dict(args)
    raise TypeError(f"probe file 'args' is a {type(args).__name__}, expected an argparse.Namespace")


def _head(head_sd: Mapping[str, Any], encoder, pooling, source: str, pooler_heads: int):
    """(head module, pooling) from the head's keys, checked against the ``pooling`` the run's args name."""
    if "pooler.query_tokens" in head_sd:
        kind = "none"
        last = "probe.2.weight" if "probe.2.weight" in head_sd else "probe.0.weight"
        if last not in head_sd:
            raise CheckpointMismatchError(f"{source}: attentive head without 'head.probe.0.weight'")
        hidden = int(head_sd["probe.0.weight"].shape[0]) if last == "probe.2.weight" else None
        head = AttentiveHead(encoder.width, pooler_heads, int(head_sd[last].shape[0]), hidden)
    elif "weight" in head_sd:
        fan_in = int(head_sd["weight"].shape[-1])
        widths = {encoder.proj.out_features: "cls", encoder.width: "last"}
        if fan_in not in widths:
            raise CheckpointMismatchError(f"{source}: 'head.weight' takes {fan_in} features; expected "
                                          f"{encoder.proj.out_features} (cls pooling) or {encoder.width} (last pooling)")
        kind = widths[fan_in]
        head = nn.Linear(fan_in, int(head_sd["weight"].shape[0]), bias="bias" in head_sd)
    else:
        raise CheckpointMismatchError(f"{source}: unknown probe head (keys {sorted(head_sd)[:6]}); expected "
                                      "'head.pooler.*' (attentive) or 'head.weight' (linear)")
    if pooling is not None and pooling != kind:
        raise CheckpointMismatchError(f"{source}: args.pooling is {pooling!r} but the head's weights are those of "
                                      f"the {kind!r} pooling")
    return load_assign(head, head_sd, source, {k: _HEAD + k for k in head_sd}), kind


def probe_from_content(obj: Any, config=None, source: str = "<probe>",
                       pooler_heads: int = _UPSTREAM_POOLER_HEADS):
    """An upstream probe file's content -> ``(AnyTouch2Probe in eval mode, ConversionReport)``."""
    if not detect_probe(obj):
        raise ValueError(f"{source}: not an AnyTouch 2 probe file (expected a 'model' dict with an AnyTouch 2 "
                         "encoder under 'tactile_model.' and a trained head under 'head.')")
    sd = obj["model"]
    args = _args(obj)
    encoder, report = anytouch2.load({k: v for k, v in sd.items() if not k.startswith(_HEAD)}, config, source)
    frames = args.get("num_frames")
    if frames is not None and int(frames) != encoder.num_frames:
        raise CheckpointMismatchError(f"{source}: args.num_frames is {frames} but the encoder weights are the "
                                      f"{encoder.num_frames}-frame variant")
    head, pooling = _head({k[len(_HEAD):]: v for k, v in sd.items() if k.startswith(_HEAD)}, encoder,
                          args.get("pooling"), source, pooler_heads)
    for key in obj:
        if key not in ("model", "args"):
            report.ignore(key, "training state of the probe run, not needed for inference")
    report.format = "anytouch2_probe"
    report.notes.append(f"head: {type(head).__name__} on pooling {pooling!r}, dataset {args.get('dataset')!r}")
    return AnyTouch2Probe(encoder, head, pooling, args).eval(), report


def load_probe(path: Union[str, Path], config=None, *, pooler_heads: int = _UPSTREAM_POOLER_HEADS,
               return_report: bool = False):
    """Load a probe file the AnyTouch 2 downstream scripts wrote (``checkpoint-0.pth``).

    Args:
        path: the file; read with ``weights_only`` (only ``argparse.Namespace`` allowed, for its ``args``).
        config: the encoder's CLIP ``config.json`` (or folder); optional for ViT-B/16 at 224.
        pooler_heads: attention heads of an attentive head (16 in the upstream TAG / Cloth / ToucHD scripts).
        return_report: also return the :class:`~anytouch.checkpoint.common.ConversionReport`.

    Returns:
        :class:`~anytouch.models.anytouch2_heads.AnyTouch2Probe` (eval mode): ``probe(touch, sensor)`` gives the head
        output, e.g. (B, 3) normalised forces for ToucHD (times the sensor's max-abs scale = newtons). ``probe.args``
        holds the run's arguments (``dataset``, ``pooling``, ``num_frames``, ...).
    """
    path = Path(path)
    probe, report = probe_from_content(safe_load(path, allow=ORIGINAL_ALLOW), config, str(path), pooler_heads)
    report.log()
    return (probe, report) if return_report else probe
