"""``python -m anytouch ...`` is the ``anytouch`` command."""
import sys

from .cli import main

sys.exit(main())
