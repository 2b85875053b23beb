"""Checkpoints: reading every supported format, converting between them, and writing ours.

``load`` (:func:`read_checkpoint`, :func:`load_model`, :func:`load_encoder`: the one way weights are loaded),
``formats`` (the registry that decides a file's format; its docstring says how to add one), ``files`` (what a
format handler sees), ``io`` (weights-only load, atomic save, safetensors), one module per format: ``ours`` (our
format), ``hub`` (hub-layout folders and ``hf-hub:`` ids; ``card`` writes their model card), ``original`` (the
original AnyTouch stage-1 / stage-2 files, both directions), ``hf_clip`` (Hugging Face
CLIP -> AnyTouch initialisations), ``open_clip`` (open_clip -> the HF CLIP layout); ``common`` (the conversion
report and the strict key / shape check).
"""
from .common import CheckpointMismatchError, ConversionReport
from .files import LoadedCheckpoint
from .hub import from_pretrained, save_pretrained
from .io import CorruptCheckpointError, UnsafeCheckpointError, atomic_save, safe_load, save_safetensors
from .load import build, load_clip_weights, load_encoder, load_model, read_checkpoint
from .ours import export_safetensors, load_checkpoint, make_checkpoint, save_checkpoint

__all__ = [
    "CheckpointMismatchError", "ConversionReport", "CorruptCheckpointError", "UnsafeCheckpointError", "atomic_save",
    "safe_load", "save_safetensors", "export_safetensors", "load_checkpoint", "make_checkpoint", "save_checkpoint",
    "LoadedCheckpoint", "read_checkpoint", "build", "load_model", "load_encoder", "load_clip_weights",
    "save_pretrained", "from_pretrained",
]
