"""``on_error="skip"``: keep training past unreadable samples, and report every one of them.

:class:`SkipErrors` wraps a dataset. When loading sample i raises :class:`~anytouch.data.io.DataError` (missing,
corrupt or truncated file, bad text file), it records ``(index, path, reason)`` and returns sample i+1 instead
(i+2, ... deterministically, up to ``max_tries``). DataLoader workers are separate processes that share no memory,
so each process appends its records as JSON lines to its own file ``skipped-<pid>.jsonl`` in a temporary folder
created by the wrapper (removed at exit by the process that created it). :meth:`SkipErrors.skipped_report`, called
in the main process between epochs, reads and (by default) clears those files, so the engine can print how many
samples were skipped and which. Errors other than DataError (bugs) are never swallowed.
"""
from __future__ import annotations

import atexit
import glob
import json
import os
import shutil
import tempfile
from typing import Dict, List

from torch.utils.data import Dataset

from .io import DataError

__all__ = ["SkipErrors", "skipped_report", "format_skipped"]


def _remove(folder: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


class SkipErrors(Dataset):
    """Wrap ``dataset`` so that unreadable samples are replaced by the next readable one and recorded.

    Attributes of the wrapped dataset (``set_epoch``, ``object_ids``, ``counts``, ...) are reachable through it.
    """

    def __init__(self, dataset: Dataset, max_tries: int = 100):
        self.dataset = dataset
        self.max_tries = int(max_tries)
        self.log_dir = tempfile.mkdtemp(prefix="anytouch-skipped-")
        atexit.register(_remove, self.log_dir, os.getpid())

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("dataset", "max_tries", "log_dir"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        n = len(self.dataset)
        last = None
        for k in range(min(n, self.max_tries)):
            j = (index + k) % n
            try:
                return self.dataset[j]
            except DataError as e:
                self._record(j, e)
                last = e
        raise DataError(f"on_error=skip: {min(n, self.max_tries)} consecutive samples from index {index} could not "
                        f"be loaded; last error: {last}", getattr(last, "path", None))

    def _record(self, index: int, err: DataError) -> None:
        line = json.dumps({"index": int(index), "path": err.path, "reason": str(err)})
        with open(os.path.join(self.log_dir, f"skipped-{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def skipped_report(self, reset: bool = True) -> List[Dict]:
        """Samples skipped since the last reset, from all processes: ``[{index, path, reason, count}]`` by index.

        Call it in the main process when an epoch's DataLoader iterator is exhausted.
        """
        merged: Dict[tuple, Dict] = {}
        for path in glob.glob(os.path.join(glob.escape(self.log_dir), "skipped-*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    key = (rec["index"], rec["path"], rec["reason"])
                    merged.setdefault(key, dict(rec, count=0))["count"] += 1
            if reset:
                os.remove(path)
        return sorted(merged.values(), key=lambda r: r["index"])


def skipped_report(dataset: Dataset, reset: bool = True) -> List[Dict]:
    """:meth:`SkipErrors.skipped_report` of ``dataset`` if it is wrapped (``on_error="skip"``), else ``[]``."""
    return dataset.skipped_report(reset) if isinstance(dataset, SkipErrors) else []


def format_skipped(records: List[Dict], limit: int = 20) -> str:
    """A short human-readable summary of :func:`skipped_report` records ("" when nothing was skipped)."""
    if not records:
        return ""
    total = sum(r["count"] for r in records)
    lines = [f"skipped {total} unreadable sample load(s) ({len(records)} distinct):"]
    lines += [f"  index {r['index']}: {r['path']} ({r['reason']}) x{r['count']}" for r in records[:limit]]
    if len(records) > limit:
        lines.append(f"  ... and {len(records) - limit} more")
    return "\n".join(lines)
