"""The ``anytouch`` command (also ``python -m anytouch``): thin wrappers over the library, one module per command
group (:mod:`.embed`, :mod:`.convert`, :mod:`.adapt`, :mod:`.train`, :mod:`.viz`, :mod:`.data`, :mod:`.quickstart`)
on top of the shared argument helpers (:mod:`.args`); :mod:`.main` builds the parser."""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
