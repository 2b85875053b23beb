"""Probe results: one row per (task, protocol, selection rule), written as ``results.json`` and ``results.md``."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .selection import RULES, RunCurves, best_on_test, last_epoch, val_selected
from .tasks import README_ACCURACY

__all__ = ["result_rows", "combine_seeds", "markdown_table", "write_results"]


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


def combine_seeds(per_seed: Sequence[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Rows of repeated runs (one list per seed, same order) -> one row per rule: ``accuracy`` the mean,
    ``accuracy_std`` the sample standard deviation, ``accuracies`` every seed's; epoch, lr and wd are seed 0's.
    A single run is returned unchanged."""
    if len(per_seed) == 1:
        return list(per_seed[0])
    out = []
    for rows in zip(*per_seed):
        accs = [r["accuracy"] for r in rows]
        out.append({**rows[0], "accuracy": round(statistics.mean(accs), 2),
                    "accuracy_std": round(statistics.stdev(accs), 2), "accuracies": accs, "n_seeds": len(accs)})
    return out


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    head = ("| task | protocol | selection rule | accuracy (%) | epoch | lr | wd | README (%) | checkpoint | date |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|---|")
    lines = [head]
    for r in rows:
        readme = "" if r["readme"] is None else f"{r['readme']:.2f}"
        acc = f"{r['accuracy']:.2f}" + (f" ± {r['accuracy_std']:.2f} ({r['n_seeds']} seeds)" if "n_seeds" in r else "")
        lines.append(f"| {r['task']} | {r['protocol']} | {r['rule_label']} | {acc} | {r['epoch']} | "
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
