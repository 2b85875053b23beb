"""The public loading API: ``anytouch.load_model`` / ``anytouch.load_encoder`` (and ``read_checkpoint``).

Re-exported from :mod:`anytouch.checkpoint.load`, which owns format detection (through the registry in
:mod:`anytouch.checkpoint.formats`) and loading.
"""
from .checkpoint.load import load_encoder, load_model, read_checkpoint

__all__ = ["load_model", "load_encoder", "read_checkpoint"]
