"""Run outputs on rank 0: tensorboard scalars, a JSON-lines log (``log.jsonl``) and a tqdm progress bar.

Tensorboard x-axis: ``int(epoch_float * 1000)`` as in the original (spec 6.5), so curves of runs with different
batch sizes line up by epoch.
"""
from __future__ import annotations

import json
import math
import resource
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from .dist import DistEnv

__all__ = ["RunLogger", "WindowMeans", "peak_memory_gb"]


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory of this process in GiB: CUDA allocator peak on GPU, max resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


class WindowMeans:
    """Running means of named values since the last :meth:`pop` (one mean per name over the times it was added)."""

    def __init__(self):
        self.sums: Dict[str, float] = defaultdict(float)
        self.counts: Dict[str, int] = defaultdict(int)

    def add(self, **values: float) -> None:
        for k, v in values.items():
            self.sums[k] += float(v)
            self.counts[k] += 1

    def pop(self) -> Dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return out


class RunLogger:
    """Writes only on rank 0; every method is a no-op elsewhere.

    Args:
        output_dir: holds ``log.jsonl`` (appended, so a resumed run continues the same file).
        env: the distributed environment.
        tb_dir: tensorboard folder (default: ``output_dir``).
    """

    def __init__(self, output_dir: Union[str, Path], env: DistEnv, tb_dir: Optional[Union[str, Path]] = None):
        self.enabled = env.is_main
        self.tb = self.jsonl = self.bar = None
        if not self.enabled:
            return
        from torch.utils.tensorboard import SummaryWriter  # imported on rank 0 only: slow, and only it writes

        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.tb = SummaryWriter(str(tb_dir or output_dir))
        self.jsonl = open(Path(output_dir) / "log.jsonl", "a")

    def log(self, epoch_float: float, scalars: Dict[str, float], **fields: Any) -> None:
        """Scalars go to tensorboard at x = int(epoch_float·1000) and, with ``fields``, to one JSON line."""
        if not self.enabled:
            return
        x = int(epoch_float * 1000)
        for k, v in scalars.items():
            self.tb.add_scalar(k, v, x)
        rec = {**fields, "epoch_float": round(epoch_float, 6), **{k: _json_num(v) for k, v in scalars.items()}}
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()

    def progress(self, total: int, initial: int, desc: str) -> None:
        """Start a tqdm bar over ``total`` steps (closing any previous one)."""
        if not self.enabled:
            return
        from ..progress import progress as tqdm  # quiet off a terminal

        if self.bar is not None:
            self.bar.close()
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)

    def update(self, **postfix: Any) -> None:
        """Advance the bar by one step; ``postfix`` is shown next to it when given."""
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def print(self, msg: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.jsonl is not None:
            self.jsonl.close()
        self.tb = self.jsonl = self.bar = None


def _json_num(v: float):
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf literals
