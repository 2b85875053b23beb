"""Run outputs on rank 0: tensorboard scalars, a JSON-lines log (``log.jsonl``) and a tqdm progress bar.

Tensorboard x-axis: ``int(epoch_float * 1000)`` as in the original (docs/original/recipe.md#logging), so curves of runs
with different batch sizes line up by epoch.
"""
from __future__ import annotations

import json
import math
import os
import resource
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
    """Running means of named values since the last :meth:`pop` (one mean per name over the times it was added).

    Values may be floats or 0-d tensors on any device: tensors are summed where they live and read once, in
    :meth:`pop`, so a training loop that adds every step synchronises with its device only when it logs. ``present``
    (name -> a 0-d 0/1 value) counts a value only where it is 1 (a loss part absent from a batch)."""

    def __init__(self):
        self.sums: Dict[str, Any] = {}
        self.counts: Dict[str, Any] = {}

    def add(self, present: Optional[Dict[str, Any]] = None, **values) -> None:
        for k, v in values.items():
            c = 1 if present is None or k not in present else present[k]
            self.sums[k] = self.sums.get(k, 0.0) + (v * c if present is not None and k in present else v)
            self.counts[k] = self.counts.get(k, 0) + c

    def pop(self) -> Dict[str, float]:
        out = {}
        for k in self.sums:
            n = float(self.counts[k])
            if n > 0:
                out[k] = float(self.sums[k]) / n
        self.sums.clear()
        self.counts.clear()
        return out


class RunLogger:
    """Writes only on rank 0; every method is a no-op elsewhere.

    Args:
        output_dir: holds ``log.jsonl`` (appended, so a resumed run continues the same file; see :meth:`rewind`).
        env: the distributed environment.
        tb_dir: tensorboard folder (default: ``output_dir``).
    """

    def __init__(self, output_dir: Union[str, Path], env: DistEnv, tb_dir: Optional[Union[str, Path]] = None):
        self.enabled = env.is_main
        self.tb = self.jsonl = self.bar = None
        if not self.enabled:
            return
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.tb_dir, self.path = str(tb_dir or output_dir), Path(output_dir) / "log.jsonl"
        self.tb = self._writer()
        self.jsonl = open(self.path, "a")

    def _writer(self, purge_step: Optional[int] = None):
        from torch.utils.tensorboard import SummaryWriter  # imported on rank 0 only: slow, and only it writes

        return SummaryWriter(self.tb_dir, purge_step=purge_step)

    def rewind(self, step: int, epoch_float: float) -> int:
        """Before a resumed run continues after global ``step`` (batches done), at ``epoch_float``: drop the
        ``log.jsonl`` records past ``step`` (and a torn last line of a killed write), and hide the tensorboard
        points from x = int(epoch_float·1000) on, so the steps that run again are not logged twice. Returns the
        number of records dropped."""
        if not self.enabled:
            return 0
        self.jsonl.close()
        keep, dropped = [], 0
        for line in self.path.read_text().splitlines(keepends=True):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if rec.get("step", 0) <= step:
                keep.append(line if line.endswith("\n") else line + "\n")
            else:
                dropped += 1
        if dropped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(keep))
            os.replace(tmp, self.path)
        self.jsonl = open(self.path, "a")
        self.tb.close()
        self.tb = self._writer(purge_step=int(epoch_float * 1000))
        return dropped

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
            self.postfix(**postfix)
        self.bar.update(1)

    def postfix(self, **postfix: Any) -> None:
        """Show ``postfix`` next to the bar from its next refresh on (e.g. the values of the last log record)."""
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)

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
