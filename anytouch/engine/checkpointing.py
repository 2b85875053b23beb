"""Training checkpoints: what they hold, where they go, and how a run finds the one to resume from.

Files in ``output_dir``: ``checkpoint-last.pth`` (rewritten at every save: every N steps, every epoch, at the end)
and ``checkpoint-<epoch>.pth`` (written after a finished epoch, the original's naming,
docs/original/checkpoints.md#training-checkpoint-files). The original keeps every epoch's file -- tens of GB for
ViT-L/14 over 20 epochs -- so only the newest ``keep_last`` epoch files and every ``keep_every``-th are kept
(:func:`prune_epoch_checkpoints`). All are written atomically (temp file + rename), and older epoch files are deleted
only after the new one is in place, so a crash or a non-finite loss never damages the last good file. The content is our
checkpoint format (docs/design.md) plus the training state: optimizer, scaler, global step, data position (epoch + step
within the epoch) and the RNG states of every rank -- all loadable with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..checkpoint.io import atomic_save, safe_load
from ..checkpoint.ours import detect, make_checkpoint
from .dist import DistEnv, gather_to_main
from .rng import rng_state, set_rng_state

__all__ = ["LAST", "epoch_checkpoint", "find_resume", "remove_stale_temps", "save_training_checkpoint",
           "epoch_checkpoints", "previous_run", "prune_epoch_checkpoints", "retention_note",
           "load_training_checkpoint", "restore_rng"]

LAST = "checkpoint-last.pth"
_EPOCH_RE = re.compile(r"checkpoint-(\d+)\.pth$")
_TRAINING_KEYS = ("model", "optimizer", "scaler", "step", "data_state")


def epoch_checkpoint(output_dir: Union[str, Path], epoch: int) -> Path:
    return Path(output_dir) / f"checkpoint-{epoch}.pth"


def remove_stale_temps(output_dir: Union[str, Path]) -> list:
    """Delete the temp files of checkpoint writes that a killed run left behind (``.checkpoint-*.tmp``: the
    atomic writer's names; at ViT-L/14 each is gigabytes). Call on rank 0 before training starts. Returns them."""
    stale = sorted(Path(output_dir).glob(".checkpoint-*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def previous_run(output_dir: Union[str, Path]) -> Optional[str]:
    """What of an earlier training run ``output_dir`` holds (checkpoints, a non-empty ``log.jsonl``), in words, or
    None when it holds none: a fresh start there would overwrite or mix with it."""
    out = Path(output_dir)
    found = [LAST] if (out / LAST).is_file() else []
    epochs = epoch_checkpoints(out)
    if epochs:
        found.append(f"{len(epochs)} epoch checkpoint(s), the newest {epochs[max(epochs)].name}")
    log = out / "log.jsonl"
    if log.is_file() and log.stat().st_size > 0:
        found.append("log.jsonl")
    return ", ".join(found) or None


def find_resume(resume: Optional[str], output_dir: Union[str, Path]) -> Optional[Path]:
    """The checkpoint to resume from: ``None``/"" -> none; ``auto`` -> ``checkpoint-last.pth`` in ``output_dir``,
    else its highest ``checkpoint-<epoch>.pth``, else none (a fresh start); anything else is a path that must exist."""
    if not resume:
        return None
    out = Path(output_dir)
    if resume == "auto":
        if (out / LAST).is_file():
            return out / LAST
        epochs = epoch_checkpoints(out)
        return epochs[max(epochs)] if epochs else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"run.resume={resume!r}: no such checkpoint file (use 'auto' to pick the newest "
                                f"checkpoint in {out}, or leave it empty for a fresh start)")
    return path


def epoch_checkpoints(output_dir: Union[str, Path]) -> Dict[int, Path]:
    """{epoch: path} of the ``checkpoint-<epoch>.pth`` files in ``output_dir``."""
    return {int(m.group(1)): p for p in Path(output_dir).glob("checkpoint-*.pth") if (m := _EPOCH_RE.search(p.name))}


def _retained(epoch: int, newest: int, keep_last: Optional[int], keep_every: int) -> bool:
    """Whether retention keeps epoch ``epoch``'s file when ``newest`` is the newest finished epoch (None: keep all)."""
    return (keep_last is None or newest - epoch < keep_last
            or (keep_every > 0 and (epoch + 1) % keep_every == 0))


def prune_epoch_checkpoints(output_dir: Union[str, Path], newest: int, keep_last: Optional[int],
                            keep_every: int = 0) -> list:
    """Delete the ``checkpoint-<e>.pth`` with e < ``newest`` that retention does not keep: kept are the files of the
    ``keep_last`` newest epochs (``newest`` counts as one) and of every ``keep_every``-th epoch (``checkpoint-<k·
    keep_every - 1>.pth``: after every keep_every finished epochs); ``keep_last=None`` keeps all. Files of later
    epochs (a run restarted from an earlier checkpoint) are left alone: training overwrites them when it gets there.
    Returns the deleted paths."""
    removed = []
    for epoch, path in sorted(epoch_checkpoints(output_dir).items()):
        if epoch < newest and not _retained(epoch, newest, keep_last, keep_every):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def retention_note(keep_last: int, keep_every: int) -> str:
    """What retention keeps, in words (printed when training starts)."""
    kept = [f"the newest {keep_last}"] if keep_last else []
    kept += [f"one every {keep_every} epochs"] if keep_every else []
    return (f"epoch checkpoints kept: {' and '.join(kept) or 'none'} (train.keep_last={keep_last}, "
            f"train.keep_every={keep_every}), plus {LAST}")


def save_training_checkpoint(output_dir: Union[str, Path], env: DistEnv, model: torch.nn.Module,
                             config: Dict[str, Any], optimizer: torch.optim.Optimizer, *, scaler: Dict[str, Any],
                             epoch: int, step: int, data_state: Dict[str, int], keep_epoch: bool = False,
                             keep_last: Optional[int] = None, keep_every: int = 0) -> Optional[Path]:
    """Write ``checkpoint-last.pth`` (and, with ``keep_epoch``, ``checkpoint-<epoch>.pth`` unless retention would
    not keep it, then delete the older epoch files retention does not keep: :func:`prune_epoch_checkpoints`). Call
    on every rank: the RNG states are gathered from all ranks; only rank 0 writes. Returns the path on rank 0, None
    elsewhere.

    ``model`` is the unwrapped TouchMAE / AnyTouchModel (its kind and arch are recorded); ``step`` counts batches
    done; ``data_state`` locates the next batch (epoch, step within it); ``epoch`` is the epoch the state belongs to
    (for an epoch end: the finished one).
    """
    rngs = gather_to_main(rng_state())  # collective: every rank must call it
    if not env.is_main:
        return None
    ckpt = make_checkpoint(model, config, optimizer=optimizer.state_dict(), scaler=scaler, epoch=epoch, step=step,
                           data_state=dict(data_state), rng=rngs)
    last = atomic_save(ckpt, Path(output_dir) / LAST)
    if keep_epoch:
        if _retained(epoch, epoch, keep_last, keep_every):
            _keep_copy(last, epoch_checkpoint(output_dir, epoch))
        prune_epoch_checkpoints(output_dir, epoch, keep_last, keep_every)  # only now that the new files are in place
    return last


def _keep_copy(src: Path, dst: Path) -> None:
    """``dst`` becomes a durable copy of ``src``: a hard link (no extra disk) when possible, else a file copy;
    either way via a temp name + rename, so ``dst`` is never half-written."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # filesystems without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def load_training_checkpoint(path: Union[str, Path], kind: str, arch: Dict[str, Any]) -> Dict[str, Any]:
    """Load a checkpoint to resume from and check it is a full training checkpoint of this kind and architecture."""
    ckpt = safe_load(path)
    if not detect(ckpt):
        raise ValueError(f"{path} is not an anytouch checkpoint (no format='anytouch' entry); to start from other "
                         f"weights use model.init=checkpoint model.checkpoint={path}")
    if ckpt.get("kind") != kind:
        raise ValueError(f"{path} is a {ckpt.get('kind')!r} checkpoint; this run resumes '{kind}' checkpoints")
    missing = [k for k in _TRAINING_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path} holds no training state ({', '.join(missing)} missing); it can initialise a model "
                         f"(model.init=checkpoint) but not resume a run")
    if ckpt.get("arch") != arch:
        diff = sorted(k for k in set(arch) | set(ckpt.get("arch") or {}) if arch.get(k) != (ckpt.get("arch") or {}).get(k))
        raise ValueError(f"{path} was trained with another architecture (differs in: {', '.join(diff)}); "
                         f"resume with the same model settings or start a new output_dir")
    return ckpt


def restore_rng(ckpt: Dict[str, Any], env: DistEnv) -> bool:
    """Restore this rank's RNG states when the checkpoint has them for the same world size. Returns whether it did
    (the training loop derives its randomness from (seed, step), so continuity does not depend on it)."""
    rngs = ckpt.get("rng") or []
    if len(rngs) != env.world_size:
        return False
    set_rng_state(rngs[env.rank])
    return True
