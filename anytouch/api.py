"""The public loading API: ``anytouch.load_model`` / ``anytouch.load_encoder`` (and ``read_checkpoint``), and the
hub layout: ``anytouch.save_pretrained`` / ``anytouch.from_pretrained``.

Re-exported from :mod:`anytouch.checkpoint.load`, which owns format detection (through the registry in
:mod:`anytouch.checkpoint.formats`) and loading, and :mod:`anytouch.checkpoint.hub`.
"""
from .checkpoint.hub import from_pretrained, save_pretrained
from .checkpoint.load import load_encoder, load_model, read_checkpoint

__all__ = ["load_model", "load_encoder", "read_checkpoint", "save_pretrained", "from_pretrained"]
