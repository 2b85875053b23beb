"""The checkpoint-format registry: the one place that decides what a checkpoint file is and how it becomes a model.

:data:`FORMATS` lists one :class:`Format` per supported layout, in detection order: the first whose ``detect``
accepts a file wins. Everything that loads weights (``load_model`` / ``load_encoder``, the training
initialisations, the probes, the command line) goes through :func:`anytouch.checkpoint.read_checkpoint`, which asks
this list, so a format added here is understood everywhere at once.

How to add a format (e.g. ``foo``):

1. Write ``anytouch/checkpoint/foo.py`` with the format's knowledge: a ``detect_file(f: CheckpointFile) -> bool``
   that looks at ``f.metadata`` (safetensors header), ``f.obj`` (the file loaded weights-only), ``f.state_dict``
   (the tensors unwrapped from a ``"model"`` / ``"state_dict"`` entry) or ``f.given`` / ``f.path``, and never
   raises for a file of another format; optionally a ``read_file(f) -> (content, report or None)``; and a
   ``build(loaded, what, config, inflate, merge_lora) -> (module, ConversionReport)`` that makes ``what``
   (``"model"`` -> the full model, an AnyTouchModel for the AnyTouch layouts; ``"encoder"`` -> the touch encoder;
   ``"mae"`` -> TouchMAE, for the training initialisations; raise ValueError naming the file for one it cannot
   make) and loads it strictly (``common.load_assign``). The three functions may be one-line lambdas in the entry.
2. Add one :class:`Format` entry to :data:`FORMATS` below, before any entry whose ``detect`` would also accept
   your files. Give ``kind``: ``"stage1"``, ``"stage2"``, ``"clip"`` or ``"encoder"`` (a touch encoder alone;
   training takes a ``"stage1"`` file as the stage-2 touch branch and refuses a ``"clip"`` file as
   model.checkpoint); ``arch`` if the file stores its
   architecture; in ``folder_files`` the weights file names a checkpoint folder of yours holds; in ``allow`` any
   class the weights-only unpickler must accept (plain data classes only).
3. Test it: write a tiny file of the format in ``tests/checkpoint_fixtures.write_every_format`` and name its
   expected format and kind in ``EXPECTED`` of ``tests/test_checkpoint_formats.py``, which checks that exactly one
   registered ``detect`` accepts each fixture and that every registered format has a fixture.

No code outside ``anytouch/checkpoint/`` changes: ``load_model``, ``load_encoder``, the training initialisations,
the probes and the command line all read files through :func:`anytouch.checkpoint.read_checkpoint`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple

import torch.nn as nn

from . import anytouch2, hf_clip, hub, open_clip, original, ours
from .common import ConfigLike, ConversionReport
from .files import CheckpointFile, LoadedCheckpoint
from .io import ORIGINAL_ALLOW

__all__ = ["Format", "FORMATS", "Builder", "get_format", "find_format"]

# build(loaded, what, config, inflate, merge_lora) -> (module, report)
Builder = Callable[[LoadedCheckpoint, str, ConfigLike, str, bool], Tuple[nn.Module, ConversionReport]]


def _state_dict(f: CheckpointFile) -> Tuple[Mapping[str, Any], None]:
    return f.state_dict, None


def _no_arch(content: Any) -> None:
    return None


@dataclass(frozen=True)
class Format:
    """One checkpoint layout.

    Attributes:
        name: the format's name (``LoadedCheckpoint.format``).
        description: what it is, for the error listing the accepted formats ("an original AnyTouch stage-1 file").
        detect: True for files of this format (see the module docstring); tried in registry order.
        build: makes a module from the :class:`LoadedCheckpoint` (see :data:`Builder`).
        kind: ``content -> "stage1" | "stage2" | "clip" | "encoder"``: what the weights are ("encoder": an
            encoder-only family such as AnyTouch 2, which training neither starts from nor resumes).
        read: ``CheckpointFile -> (content, report or None)``; default: the unwrapped state dict.
        arch: ``content -> the stored ArchConfig dict``, or None when the format stores none.
        folder_files: weights file names looked for, in order, when a checkpoint folder is given.
        allow: classes the weights-only unpickler may accept for this format's files.
    """

    name: str
    description: str
    detect: Callable[[CheckpointFile], bool]
    build: Builder
    kind: Callable[[Any], str]
    read: Callable[[CheckpointFile], Tuple[Any, Optional[ConversionReport]]] = _state_dict
    arch: Callable[[Any], Optional[Mapping[str, Any]]] = _no_arch
    folder_files: Tuple[str, ...] = ()
    allow: Tuple[type, ...] = ()


def _open_clip_read(f: CheckpointFile) -> Tuple[Mapping[str, Any], ConversionReport]:
    return open_clip.open_clip_to_hf(open_clip.unwrap(f.state_dict), str(f.path))


FORMATS: Tuple[Format, ...] = (
    Format("ours", "an anytouch checkpoint (.pt/.pth, or an exported .safetensors)", ours.detect_file, ours.build,
           kind=lambda ckpt: ckpt["kind"], read=ours.read_file, arch=lambda ckpt: ckpt["arch"]),
    Format("hub", "a hub-layout folder (config.json with library_name anytouch + model.safetensors)",
           hub.detect_file, hub.build, kind=lambda ckpt: ckpt["kind"], read=hub.read_file,
           arch=lambda ckpt: ckpt["arch"], folder_files=(hub.WEIGHTS_NAME,)),
    Format("original_stage2", "an original AnyTouch stage-2 file",
           lambda f: original.detect_stage2(f.state_dict), original.build, kind=lambda sd: "stage2",
           allow=ORIGINAL_ALLOW),
    Format("original_stage1", "an original AnyTouch stage-1 file",
           lambda f: original.detect_stage1(f.state_dict), original.build, kind=lambda sd: "stage1",
           allow=ORIGINAL_ALLOW),
    Format("anytouch2", "an AnyTouch 2 encoder, upstream probe file or its .safetensors export",
           lambda f: anytouch2.detect(f.obj), anytouch2.build, kind=lambda obj: "encoder",
           read=lambda f: (f.obj, None), allow=ORIGINAL_ALLOW),
    Format("hf_clip", "a Hugging Face CLIP folder or state dict", lambda f: hf_clip.detect(f.state_dict),
           hf_clip.build, kind=lambda sd: "clip", folder_files=("model.safetensors", "pytorch_model.bin")),
    Format("open_clip", "an open_clip CLIP state dict", lambda f: open_clip.detect(open_clip.unwrap(f.state_dict)),
           hf_clip.build, kind=lambda sd: "clip", read=_open_clip_read,
           folder_files=("open_clip_model.safetensors", "open_clip_pytorch_model.bin")),
)


def get_format(name: str) -> Format:
    """The registered format called ``name``."""
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(f"no checkpoint format {name!r}; registered: {', '.join(f.name for f in FORMATS)}")


def find_format(f: CheckpointFile) -> Format:
    """The first registered format whose ``detect`` accepts ``f``.

    Raises:
        ValueError: no format accepts it; the message names the file, its first keys and every accepted format.
    """
    for fmt in FORMATS:
        if fmt.detect(f):
            return fmt
    if not isinstance(f.obj, Mapping):
        raise ValueError(f"{f.path}: expected a state dict or a checkpoint dict, got a {type(f.obj).__name__}")
    keys = list(f.state_dict)[:6]
    accepted = ", ".join(fmt.description for fmt in FORMATS)
    raise ValueError(f"{f.path}: unrecognised checkpoint (first keys: {keys}); expected one of: {accepted}")
