"""Benchmark outputs: the mean ± std summary over seeds, ``results.json``, a Markdown table and a bar plot.

Every number is a test-split metric at the epoch selected on validation (:mod:`.protocol`). The standard deviation
is over seeds (sample std, ddof 1; 0 for a single seed).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from ..checkpoint.io import atomic_write_bytes

__all__ = ["summarise", "markdown_table", "plot", "write_report"]


def summarise(cells: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per (task, head, budget, encoder): the primary test metric's mean and std over seeds."""
    groups: Dict[Tuple, List[Dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["task"], c["head"], c["budget"], c["encoder"]), []).append(c)
    rows = []
    for (task, head, budget, enc), cs in groups.items():
        vals = [float(c["test"][c["primary"]]) for c in cs]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        rows.append({"task": task, "head": head, "budget": budget, "encoder": enc, "metric": cs[0]["primary"],
                     "higher_is_better": cs[0]["higher_is_better"], "mean": mean, "std": std,
                     "seeds": sorted(c["seed"] for c in cs)})
    return rows


def _order(values) -> List:
    return list(dict.fromkeys(values))


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    """Rows = (task, metric with its direction, head, budget), columns = encoders, cells "mean ± std"."""
    encoders = _order(r["encoder"] for r in rows)
    by_key = {(r["task"], r["head"], r["budget"], r["encoder"]): r for r in rows}
    lines = ["| task | metric | head | budget | " + " | ".join(encoders) + " |",
             "|---|---|---|---|" + "---|" * len(encoders)]
    for task, head, budget in _order((r["task"], r["head"], r["budget"]) for r in rows):
        first = next(r for r in rows if (r["task"], r["head"], r["budget"]) == (task, head, budget))
        arrow = "↑" if first["higher_is_better"] else "↓"
        cells = []
        for enc in encoders:
            r = by_key.get((task, head, budget, enc))
            cells.append(f"{r['mean']:.4g} ± {r['std']:.2g}" if r else "–")
        lines.append(f"| {task} | {first['metric']} {arrow} | {head} | {budget:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Dict[str, Any]], path: Path) -> Path:
    """One panel per task; encoders on the x axis, one bar per (head, budget), error bars = std over seeds."""
    import matplotlib  # plotting is only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, encoders = _order(r["task"] for r in rows), _order(r["encoder"] for r in rows)
    series = _order((r["head"], r["budget"]) for r in rows)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.0, 1.2 * len(encoders) + 1.5) * len(tasks), 3.6),
                             squeeze=False)
    width = 0.8 / len(series)
    for ax, task in zip(axes[0], tasks):
        for k, (head, budget) in enumerate(series):
            sel = {r["encoder"]: r for r in rows if (r["task"], r["head"], r["budget"]) == (task, head, budget)}
            xs = [i + (k - (len(series) - 1) / 2) * width for i, e in enumerate(encoders) if e in sel]
            ax.bar(xs, [sel[e]["mean"] for e in encoders if e in sel], width,
                   yerr=[sel[e]["std"] for e in encoders if e in sel], capsize=2, label=f"{head} {budget:g}")
        metric = next(r for r in rows if r["task"] == task)
        ax.set_title(f"{task} ({metric['metric']}, {'higher' if metric['higher_is_better'] else 'lower'} is better)",
                     fontsize=9)
        ax.set_xticks(range(len(encoders)))
        ax.set_xticklabels(encoders, rotation=30, ha="right", fontsize=8)
    axes[0][-1].legend(fontsize=7, title="head, budget", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out: Path, cells: Sequence[Dict[str, Any]], config: Dict[str, Any],
                 timing: Dict[str, Any]) -> Dict[str, Any]:
    """Write ``results.json`` (config, cells, summary, timing), ``results.md`` and ``results.png`` in ``out``."""
    rows = summarise(cells)
    results = {"config": config, "summary": rows, "timing": timing, "cells": list(cells)}
    atomic_write_bytes(json.dumps(results, indent=1, default=str).encode(), out / "results.json")
    note = ("Test metric at the epoch selected on validation; mean ± std over seeds "
            f"{sorted({s for r in rows for s in r['seeds']})}.\n\n")
    atomic_write_bytes((note + markdown_table(rows)).encode(), out / "results.md")
    if rows:
        plot(rows, out / "results.png")
    return results
