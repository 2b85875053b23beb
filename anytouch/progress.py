"""Progress bars that suit where the output goes: a live tqdm bar on a terminal, and otherwise (a CI log, a file,
a pipe) no redrawn bar at all but one summary line per stage when it ends, since every redraw of a bar is a
carriage return that a log keeps (one CI log held 216 KB of them).

Every progress bar of the package comes from :func:`progress`.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional

from tqdm import tqdm

__all__ = ["progress", "StageLine"]


class StageLine:
    """The stand-in for a tqdm bar off a terminal: counts like one, prints nothing while running and, if ``leave``,
    one line when closed (``desc: n/total unit in 12.3 s, key=value``). Supports the tqdm calls the package
    makes: iteration, ``update``, ``set_postfix``, ``write``, ``close`` and use as a context manager."""

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
                 unit: str = "it", initial: int = 0, leave: bool = True, disable: bool = False):
        self.iterable, self.desc, self.unit, self.leave, self.disable = iterable, desc, unit, leave, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.initial = total, initial, initial
        self.postfix: dict = {}
        self.start = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> "StageLine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def write(self, msg: str) -> None:
        print(msg, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.disable or not self.leave:
            return
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc + ': ' if self.desc else ''}{count} {self.unit} in {time.monotonic() - self.start:.1f} s"
              f"{extra}", file=sys.stderr, flush=True)


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "it",
             initial: int = 0, leave: bool = True, disable: bool = False, **tqdm_kwargs: Any):
    """A tqdm bar (arguments as tqdm's) when stderr is a terminal, else a :class:`StageLine`: quiet while running,
    one line at the end of a stage that is left (``leave=True``), nothing for a transient one."""
    if sys.stderr.isatty():
        tqdm_kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=disable,
                    **tqdm_kwargs)
    return StageLine(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, disable=disable)
