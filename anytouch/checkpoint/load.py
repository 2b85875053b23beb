"""Loading AnyTouch models from any supported checkpoint: ``read_checkpoint``, ``load_model``, ``load_encoder``.

The format of a file is decided by the registry in :mod:`anytouch.checkpoint.formats` (ours, the original AnyTouch
stage-2 and stage-1 files, Hugging Face CLIP, open_clip), and the module is built by that format's builder. Every
load is strict; whatever is deliberately skipped is named, with the reason, in the conversion report (logged at
INFO on the ``anytouch.checkpoint`` logger, and returned with ``return_report=True``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn

from . import formats, hub
from .common import ConfigLike, ConversionReport
from .files import CheckpointFile, LoadedCheckpoint, resolve_weights

__all__ = ["read_checkpoint", "build", "load_model", "load_encoder", "load_clip_weights"]

PathLike = Union[str, Path]


def read_checkpoint(checkpoint: PathLike) -> LoadedCheckpoint:
    """Read a checkpoint file, folder or hub id (``hf-hub:org/name``, see :func:`~anytouch.checkpoint.hub.resolve`)
    weights-only and detect its format.

    A folder is resolved to the first weights file it holds among the registered formats' ``folder_files``
    (``model.safetensors``, ``pytorch_model.bin``, ``open_clip_model.safetensors``, ...).

    Returns:
        A :class:`~anytouch.checkpoint.files.LoadedCheckpoint` (a named tuple starting with the format name):
        format ``"ours"`` (content: our checkpoint dict), ``"hub"`` (a hub-layout folder; content: our checkpoint
        dict with the folder's config under ``"hub"``), ``"original_stage2"``, ``"original_stage1"``,
        ``"hf_clip"`` (content: the state dict) or ``"open_clip"`` (content: already converted to the HF CLIP
        layout, ``report`` that conversion's).

    Raises:
        FileNotFoundError: no such file, or a folder without a known weights file.
        CorruptCheckpointError / UnsafeCheckpointError: see :func:`anytouch.checkpoint.io.safe_load`.
        ValueError: the file is readable but of no registered format (the message lists them).
    """
    given = hub.resolve(checkpoint)
    names = dict.fromkeys(name for fmt in formats.FORMATS for name in fmt.folder_files)
    allow = tuple(dict.fromkeys(cls for fmt in formats.FORMATS for cls in fmt.allow))
    f = CheckpointFile(given, resolve_weights(given, names), allow)
    fmt = formats.find_format(f)
    content, report = fmt.read(f)
    return LoadedCheckpoint(fmt.name, content, f.path, report, fmt.kind(content), fmt.arch(content))


def build(loaded: LoadedCheckpoint, what: str = "model", config: ConfigLike = None, *, inflate: str = "repeat",
          merge_lora: bool = True) -> Tuple[nn.Module, ConversionReport]:
    """Build ``what`` (``"model"``: AnyTouchModel, ``"encoder"``: TouchEncoder, ``"mae"``: TouchMAE) from a read
    checkpoint with its format's builder; logs the report and returns ``(module in eval mode, report)``.

    ``config``, ``inflate`` and ``merge_lora`` are as in :func:`load_model`.
    """
    model, report = formats.get_format(loaded.format).build(loaded, what, config, inflate, merge_lora)
    report.log()
    return model.eval(), report


def load_model(checkpoint: PathLike, config: ConfigLike = None, *, inflate: str = "repeat", merge_lora: bool = True,
               return_report: bool = False):
    """Load an :class:`~anytouch.models.AnyTouchModel` (eval mode) from any supported checkpoint.

    Args:
        checkpoint: file or folder: our ``.pt``/``.pth``/``.safetensors``, an original AnyTouch stage-1 or stage-2
            file, or a CLIP checkpoint (HF folder / ``pytorch_model.bin`` / ``model.safetensors``, or open_clip);
            or a hub-layout folder (``anytouch.save_pretrained``) or its hub id ``hf-hub:org/name``.
            A stage-1 file gives a model without vision/text towers (``encode_vision`` / ``encode_text`` raise).
            A CLIP checkpoint gives the CLIP-initialised stage-2 model (the towers are CLIP's, the touch encoder is
            CLIP's vision tower with its patch kernel inflated over frames, LoRA and heads start fresh).
            An AnyTouch 2 file (released encoder, upstream probe file or our export) gives its
            :class:`~anytouch.models.anytouch2.AnyTouch2Encoder`, the family's only model (docs/anytouch2.md).
        config: for original and CLIP files: the CLIP ``config.json`` (or its folder) that supplies head counts and
            activations, or an ArchConfig / preset name. Optional: without it the sizes are inferred from the
            tensors (heads = width // 64 for the towers, 16 for the decoder). Our own files carry their
            architecture: a config given for them must match it (else CheckpointMismatchError naming the first
            differing field).
        inflate: CLIP patch-conv inflation, ``"repeat"`` (original) or ``"mean"``.
        merge_lora: fold the vision LoRA of an original stage-2 file into the base weights (W + alpha/r·B·A).
        return_report: also return the :class:`~anytouch.checkpoint.common.ConversionReport`.
    """
    model, report = build(read_checkpoint(checkpoint), "model", config, inflate=inflate, merge_lora=merge_lora)
    return (model, report) if return_report else model


def load_encoder(checkpoint: PathLike, config: ConfigLike = None, *, inflate: str = "repeat",
                 return_report: bool = False):
    """Load only the :class:`~anytouch.models.TouchEncoder` (eval mode) from any supported checkpoint.

    Same arguments as :func:`load_model`; keys outside the touch encoder (decoder, towers, heads) are reported as
    ignored. ``encoder(touch, sensor)`` gives the (B, projection_dim) touch feature.
    """
    model, report = build(read_checkpoint(checkpoint), "encoder", config, inflate=inflate)
    return (model, report) if return_report else model


def load_clip_weights(path: PathLike, setting: str = "clip weights") -> Dict[str, torch.Tensor]:
    """The Hugging Face CLIP state dict of a CLIP checkpoint (HF folder or file, or open_clip, converted), for the
    training initialisations; ``setting`` names the option in the error raised for a checkpoint of another kind."""
    loaded = read_checkpoint(path)
    if loaded.kind != "clip":
        raise ValueError(f"{setting}={path} is a {loaded.format} checkpoint ({loaded.kind}), not CLIP weights; "
                         "expected a Hugging Face CLIP folder or weights file, or an open_clip state dict")
    if loaded.report is not None:
        loaded.report.log()
    return dict(loaded.content)
