"""``python -m anytouch.bench`` runs :func:`anytouch.bench.command.main`."""
import sys

from .command import main

sys.exit(main())
