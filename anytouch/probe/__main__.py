"""``python -m anytouch.probe --config configs/probe_<task>.yaml key.sub=value ...`` (see :mod:`.runner`)."""
from .runner import main

if __name__ == "__main__":
    main()
