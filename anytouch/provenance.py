"""Where a checkpoint or a result came from: package and library versions, the git commit of the source tree (when
it is a git checkout) and the time. Stored in every checkpoint of ours (``provenance``) and in probe results, so a
number can be traced back to the code that produced it."""
from __future__ import annotations

import functools
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Optional

__all__ = ["provenance", "git_commit"]


@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """``<sha>`` (``<sha>+dirty`` with uncommitted changes) of the checkout holding this package, or None when it
    is not one (an installed wheel) or git is unavailable."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        run = functools.partial(subprocess.run, cwd=repo, capture_output=True, text=True, timeout=10, check=True)
        sha = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


def provenance() -> Dict[str, Optional[str]]:
    """Plain strings (checkpoint-safe): anytouch, torch and Python versions, git commit, UTC time."""
    import torch  # here: the provenance module itself stays importable without torch

    from . import __version__  # here: the package's __init__ is still executing when this module first loads

    return {"anytouch": __version__, "torch": str(torch.__version__), "python": platform.python_version(),
            "git": git_commit(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
