"""Checkpoint I/O and converters: one module per foreign format (spec section 2).

``io`` (weights-only load, atomic save, safetensors), ``hf_clip`` (HF CLIP -> AnyTouch inits, spec 2.4 / 2.5),
``open_clip`` (open_clip -> HF CLIP layout), ``original`` (the original AnyTouch stage-1 / stage-2 files, both
directions), ``ours`` (our format). ``anytouch.load_model`` / ``load_encoder`` detect the format.
"""
from .common import CheckpointMismatchError, ConversionReport
from .io import CorruptCheckpointError, UnsafeCheckpointError, atomic_save, safe_load, save_safetensors
from .ours import export_safetensors, load_checkpoint, make_checkpoint, save_checkpoint

__all__ = [
    "CheckpointMismatchError", "ConversionReport", "CorruptCheckpointError", "UnsafeCheckpointError", "atomic_save",
    "safe_load", "save_safetensors", "export_safetensors", "load_checkpoint", "make_checkpoint", "save_checkpoint",
]
