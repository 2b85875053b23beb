"""Probe results: one row per (task, protocol, selection rule), written as ``results.json`` and ``results.md``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .selection import RULES, RunCurves, best_on_test, last_epoch, val_selected
from .tasks import README_ACCURACY

__all__ = ["result_rows", "markdown_table", "write_results"]


def result_rows(task: str, protocol: str, full: RunCurves, selection: Optional[RunCurves],
                points: Sequence[Tuple[float, float]], checkpoint: str, date: str) -> List[Dict[str, Any]]:
    """The three numbers of a task and protocol (``val`` only when a selection run exists).

    Args:
        full: the run on the whole training set (``test`` curves); grid point 0 holds the paper's hyper-parameters.
        selection: the run on the carved training set (``val`` curves), or None.
        points: (lr, weight decay) of each grid point.
    """
    test = full.evals["test"]
    sels = {"paper": best_on_test(test, 0), "last": last_epoch(test, 0)}
    if selection is not None:
        sels["val"] = val_selected(selection.evals["val"], test)
    return [{
        "task": task, "protocol": protocol, "rule": rule, "rule_label": RULES[rule],
        "accuracy": round(100 * s.acc, 2), "epoch": s.epoch + 1, "lr": points[s.g][0],
        "weight_decay": points[s.g][1], "readme": README_ACCURACY.get(task), "checkpoint": checkpoint, "date": date,
        "n_train": full.n_train, "n_test": test.n,
    } for rule, s in sels.items()]


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = ("| task | protocol | selection rule | accuracy (%) | epoch | lr | wd | README (%) | checkpoint | date |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|---|")
    lines = [head]
    for r in rows:
        readme = "" if r["readme"] is None else f"{r['readme']:.2f}"
        lines.append(f"| {r['task']} | {r['protocol']} | {r['rule_label']} | {r['accuracy']:.2f} | {r['epoch']} | "
                     f"{r['lr']:g} | {r['weight_decay']:g} | {readme} | {r['checkpoint']} | {r['date']} |")
    return "\n".join(lines)


def write_results(output_dir: Union[str, Path], rows: Sequence[Dict[str, Any]], extra: Dict[str, Any]) -> Path:
    """Write ``results.json`` (rows + ``extra``: config, curves, timings) and ``results.md``; returns the folder."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.json", "w") as f:
        json.dump({"rows": list(rows), **extra}, f, indent=1)
    (out / "results.md").write_text(markdown_table(rows) + "\n")
    return out
