"""What a format handler sees and what reading a checkpoint returns.

:class:`CheckpointFile` is the checkpoint as given (a file, or a folder resolved to its weights file), with the
weights-only-loaded object and the safetensors header read lazily and at most once, so that trying every format's
``detect`` in turn costs one read of the file. :class:`LoadedCheckpoint` is the result of
:func:`anytouch.checkpoint.read_checkpoint`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Tuple

from . import open_clip
from .common import ConversionReport
from .io import safe_load, safetensors_metadata

__all__ = ["CheckpointFile", "LoadedCheckpoint", "resolve_weights"]


def resolve_weights(path: Path, folder_files: Iterable[str]) -> Path:
    """``path`` itself for a file; for a folder, the first of ``folder_files`` it holds."""
    if path.is_dir():
        names = tuple(folder_files)
        for name in names:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: a checkpoint folder must hold one of {', '.join(names)}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


class CheckpointFile:
    """A checkpoint being identified: ``given`` (the path as passed) and ``path`` (its weights file).

    Args:
        given: the file or folder the caller named.
        path: the weights file (``given`` itself, or the file :func:`resolve_weights` found in the folder).
        allow: the classes the weights-only unpickler may accept (the union over the registered formats).
    """

    def __init__(self, given: Path, path: Path, allow: Tuple[type, ...] = ()):
        self.given, self.path, self.allow = given, path, allow

    @functools.cached_property
    def metadata(self) -> Dict[str, str]:
        """The safetensors header metadata (empty for other files); reading it does not load the tensors."""
        return safetensors_metadata(self.path) if self.path.suffix == ".safetensors" else {}

    @functools.cached_property
    def obj(self) -> Any:
        """The whole file, loaded weights-only (``torch.load(weights_only=True)`` or safetensors)."""
        return safe_load(self.path, allow=self.allow)

    @functools.cached_property
    def state_dict(self) -> Mapping[str, Any]:
        """The tensors of :attr:`obj`: unwrapped from a ``"model"`` entry (the original AnyTouch files and many
        trainers) or a ``"state_dict"`` entry (open_clip, with its DDP ``module.`` prefix removed); an empty dict
        when the file holds no mapping at all."""
        obj = self.obj
        if not isinstance(obj, Mapping):
            return {}
        if isinstance(obj.get("model"), Mapping):
            return obj["model"]
        if isinstance(obj.get("state_dict"), Mapping):
            return open_clip.unwrap(obj)
        return obj


class LoadedCheckpoint(NamedTuple):
    """A read checkpoint whose format is known.

    Attributes:
        format: the registry name of its format (``"ours"``, ``"original_stage2"``, ``"hf_clip"``, ...).
        content: what that format's ``read`` produced (our checkpoint dict, a state dict, ...).
        weights: the weights file it was read from.
        report: the conversion report of a conversion done while reading (open_clip -> HF layout), else None.
        kind: what the weights are: ``"stage1"`` (a touch MAE), ``"stage2"`` (the aligned model) or ``"clip"``
            (CLIP weights, an initialisation).
        arch: the architecture stored in the file (``ArchConfig.to_dict()``), or None when the file stores none.
    """

    format: str
    content: Any
    weights: Path
    report: Optional[ConversionReport]
    kind: str
    arch: Optional[Mapping[str, Any]]
