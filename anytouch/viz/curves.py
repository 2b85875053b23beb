"""Training curves from the logs a run writes (anytouch.engine.logging): ``log.jsonl`` (one JSON record per logging
step with ``epoch_float`` and the scalars), or, when a folder has none, its tensorboard event files (x axis
``int(epoch_float * 1000)``, docs/original/recipe.md#logging)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .common import pyplot, save_png

__all__ = ["read_log", "plot_curves", "chance_level", "y_label"]

Series = Dict[str, Tuple[np.ndarray, np.ndarray]]
# record fields that are positions, not curves
_AXES = ("epoch_float", "epoch", "step", "global_step", "iteration", "step_in_epoch")


def _read_jsonl(path: Path) -> Series:
    xs: Dict[str, List[float]] = {}
    ys: Dict[str, List[float]] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({e.msg})") from None
            x = rec.get("epoch_float", rec.get("epoch"))
            if x is None:
                raise ValueError(f"{path}:{lineno}: record has neither 'epoch_float' nor 'epoch'")
            for k, v in rec.items():
                if k in _AXES or isinstance(v, bool):
                    continue
                if isinstance(v, str) and v in ("nan", "inf", "-inf"):  # how the logger writes non-finite values
                    v = float(v)
                if isinstance(v, (int, float)):
                    xs.setdefault(k, []).append(float(x))
                    ys.setdefault(k, []).append(float(v))
    return {k: (np.asarray(xs[k]), np.asarray(ys[k])) for k in xs}


def _read_tensorboard(folder: Path) -> Series:
    # here, not at the top: tensorboard is slow to load and only event-file runs need it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: (np.asarray([e.step / 1000 for e in acc.Scalars(tag)]),
                  np.asarray([e.value for e in acc.Scalars(tag)])) for tag in acc.Tags().get("scalars", [])}


def read_log(run: Union[str, Path]) -> Series:
    """A run folder (its ``log.jsonl``, else its tensorboard events) or a ``.jsonl`` file -> {name: (epochs,
    values)}."""
    run = Path(run)
    if run.is_file():
        return _read_jsonl(run)
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder or log file at {run}")
    if (run / "log.jsonl").is_file():
        return _read_jsonl(run / "log.jsonl")
    if any(run.glob("events.out.tfevents.*")):
        return _read_tensorboard(run)
    raise FileNotFoundError(f"{run} holds no log.jsonl and no tensorboard events (events.out.tfevents.*)")


def _ema(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style smoothing: exponential moving average with bias correction (NaNs skipped)."""
    out, acc, norm = np.empty_like(y, dtype=float), 0.0, 0.0
    for i, v in enumerate(y):
        if np.isfinite(v):
            acc, norm = weight * acc + (1 - weight) * v, weight * norm + (1 - weight)
        out[i] = acc / norm if norm else np.nan
    return out


def chance_level(key: str) -> Optional[float]:
    """The value a scalar takes at chance, when its name says so: the two BCE parts of the cross-sensor matching
    loss (``..._cross_pos`` / ``..._cross_neg``, ln 2 each) and the matching accuracy (``..._acc_..._cross``, 0.5).
    None for everything else (losses without a fixed chance level, the learning rate...)."""
    if "cross" in key and ("_pos" in key or "_neg" in key) and "loss" in key:
        return math.log(2)
    if "cross" in key and "acc" in key:
        return 0.5
    return None


def y_label(key: str) -> str:
    """The y-axis label of a scalar, from its name."""
    if key == "lr" or key.endswith("/lr"):
        return "learning rate"
    if "acc" in key:
        return "accuracy"
    if "cross" in key and "loss" in key:
        return "BCE" if ("_pos" in key or "_neg" in key) else "weighted BCE (pos + neg)"
    if any(t in key for t in ("_mae", "_recon", "_pred")):
        return "MSE (normalised pixels)"
    if any(t in key for t in ("touch_vision", "touch_text", "vision_text")):
        return "InfoNCE"
    if key == "logit_scale":
        return "ln(1 / temperature)"
    return "loss" if "loss" in key else key


def _validation_key(key: str, found: Sequence[str]) -> Optional[str]:
    """``val_<x>`` for a ``train_<x>`` panel when some run logged it."""
    return "val_" + key[len("train_"):] if key.startswith("train_") and "val_" + key[len("train_"):] in found else None


def plot_curves(runs: Mapping[str, Union[str, Path]], path: Union[str, Path], keys: Sequence[str] = (),
                max_panels: int = 12, smooth: float = 0.0,
                marks: Optional[Mapping[str, Tuple[float, float, str]]] = None) -> Path:
    """One panel per logged scalar (loss-like first, ``lr`` last), one line per run; x = epoch. Saves a PNG.

    Every panel has a y label; scalars with a chance level (:func:`chance_level`) get it as a dashed grey line, and
    a ``train_<x>`` panel also draws ``val_<x>`` (dashed) when a run logged it.

    Args:
        runs: {legend name: run folder or log.jsonl}.
        path: output PNG.
        keys: only these scalars (default: every scalar any run logged, at most ``max_panels``).
        smooth: EMA weight in [0, 1) as TensorBoard's slider; > 0 draws the raw curve faintly behind.
        marks: {scalar: (epoch, value, legend)} single points drawn on that scalar's panel (e.g. a held-out
            evaluation at the end of training).
    """
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    data = {name: read_log(p) for name, p in runs.items()}
    found = list(dict.fromkeys(k for series in data.values() for k in series))
    marks = dict(marks or {})
    unknown = sorted(set(marks) - set(keys or found))
    if unknown:
        raise ValueError(f"marks for {unknown}, which are not plotted; plotted scalars: {', '.join(keys or found)}")
    if keys:
        missing = [k for k in keys if k not in found]
        if missing:
            raise ValueError(f"no run logged {missing}; logged scalars: {', '.join(found) or '(none)'}")
        found = list(keys)
    if not found:
        raise ValueError(f"the logs of {', '.join(map(str, runs.values()))} hold no scalars")
    validation = {k: _validation_key(k, found) for k in found}
    if not keys:  # a validation curve shares its training curve's panel
        found = [k for k in found if k not in validation.values()]
    found.sort(key=lambda k: (k == "lr" or k.endswith("/lr"), "loss" not in k, k))
    found = found[:max_panels]
    cols = min(3, len(found))
    rows = math.ceil(len(found) / cols)
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    for ax, key in zip(axes.flat, found):
        for i, (name, series) in enumerate(data.items()):
            if key in series:
                x, y = series[key]
                colour = f"C{i}"
                if smooth > 0 and key != "lr":  # the schedule is exact, nothing to smooth
                    ax.plot(x, y, color=colour, lw=0.8, alpha=0.25)
                    y = _ema(y, smooth)
                ax.plot(x, y, color=colour, label=name, lw=1.2, marker="." if len(x) < 30 else None)
            val = validation.get(key)
            if val and val in series:
                ax.plot(*series[val], color=f"C{i}", ls="--", lw=1.2, marker=".", label=f"{name} (validation)")
        chance = chance_level(key)
        if chance is not None:
            ax.axhline(chance, color="0.5", ls="--", lw=0.9, label=f"chance ({chance:.3g})")
        if key in marks:
            mx, my, text = marks[key]
            ax.plot([mx], [my], "k*", ms=8, label=text)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(y_label(key), fontsize=8)
        ax.tick_params(labelsize=7)
        finite = np.concatenate([s[key][1] for s in data.values() if key in s])
        finite = finite[np.isfinite(finite)]
        if "loss" in key and len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
            ax.set_yscale("log")  # only when the curve spans more than a decade
        if len(data) > 1 or chance is not None or key in marks or validation.get(key):
            ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(found):]:
        ax.axis("off")
    fig.tight_layout()
    return save_png(fig, path)
