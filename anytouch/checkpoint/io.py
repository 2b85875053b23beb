"""Safe checkpoint I/O: weights-only loading, atomic saving, safetensors.

Every load in anytouch goes through :func:`safe_load`, which never runs arbitrary pickled code:
``torch.load(weights_only=True)`` with an explicit allow-list (``argparse.Namespace`` only for the original
AnyTouch files, whose ``args`` entry is a Namespace; docs/original/checkpoints.md#what-the-probe-reads,
#training-checkpoint-files). ``.safetensors`` files are read with safetensors. An empty, truncated or foreign file
raises :class:`CorruptCheckpointError` naming the file and its size. Saves are atomic (temp file in the same folder,
fsync, ``os.replace``), so a crash never leaves a truncated checkpoint under the final name.

Works with torch >= 2.4: ``torch.serialization.safe_globals`` and ``get_unsafe_globals_in_checkpoint`` only exist
from torch 2.5; on 2.4 the allow-list is added with ``add_safe_globals`` for the duration of one load and the
offending class is read from torch's error message.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

__all__ = [
    "UnsafeCheckpointError",
    "CorruptCheckpointError",
    "ORIGINAL_ALLOW",
    "safe_load",
    "read_safetensors",
    "safetensors_metadata",
    "atomic_save",
    "atomic_write_bytes",
    "save_safetensors",
]

PathLike = Union[str, os.PathLike]

# The only non-tensor class the original AnyTouch checkpoints pickle (their ``args`` entry).
ORIGINAL_ALLOW = (argparse.Namespace,)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the weights-only allow-list; it was not unpickled."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file is empty, truncated or not a torch / safetensors file at all."""


# what torch.load raises on a damaged file: a broken zip (RuntimeError from its reader), a pickle cut short
# (EOFError), a text file read as the legacy format (KeyError / OSError), ...
_READ_ERRORS = (RuntimeError, EOFError, KeyError, IndexError, ValueError, OSError, zipfile.BadZipFile)


def _corrupt(path: Path, err: BaseException, kind: str = "torch checkpoint") -> CorruptCheckpointError:
    size = path.stat().st_size
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    # torch's weights-only message starts with generic advice; the useful line names the bad pickle operand
    why = next((ln for ln in lines if ln.lower().startswith("unsupported")), lines[0] if lines else "")[:200]
    return CorruptCheckpointError(
        f"cannot read checkpoint {path} ({size} bytes): the file is truncated or not a {kind} "
        f"[{type(err).__name__}{': ' + why if why else ''}]"
    )


def _looks_like_torch_file(path: Path) -> bool:
    """A zip archive (torch >= 1.6) or a pickle stream (the legacy format starts with a PROTO opcode)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def _unsafe_globals(path: Path, err: BaseException) -> list:
    """The non-allow-listed globals the file pickles (torch >= 2.5 lists them all; 2.4: the one in ``err``)."""
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if find is None or not zipfile.is_zipfile(path):
        # torch 2.4, or a legacy (pre-1.6) pickle whose globals torch cannot list statically: torch's message
        # names the first offending global ("Unsupported global: GLOBAL argparse.Namespace ...")
        return list(dict.fromkeys(re.findall(r"GLOBAL ([\w.]+)", str(err))))
    return list(find(str(path)))


def _weights_only_load(path: Path, allow: tuple, mmap: bool) -> Any:
    """``torch.load(weights_only=True)`` with ``allow`` added to torch's allow-list for this load only."""
    ser = torch.serialization
    if hasattr(ser, "safe_globals"):  # torch >= 2.5: a scoped allow-list
        with ser.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if not allow:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    # torch 2.4 only has the process-wide list: add to it, load, then put the previous list back
    previous = list(ser.get_safe_globals())
    ser.add_safe_globals(list(allow))
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    finally:
        ser.clear_safe_globals()
        ser.add_safe_globals(previous)


def safe_load(path: PathLike, allow: Iterable[type] = (), mmap: Optional[bool] = None) -> Any:
    """Load a checkpoint without executing pickled code.

    Args:
        path: a ``torch.save`` file (.pt/.pth/.bin/...) or a ``.safetensors`` file.
        allow: classes (besides torch's weights-only defaults) that may be unpickled, e.g. :data:`ORIGINAL_ALLOW`.
        mmap: memory-map the tensor storages (default: on for zip-format torch files), so that only the tensors
            actually used are read; an original stage-2 file also holds ~9 GB of optimizer state.

    Returns:
        The loaded object (a dict of CPU tensors for ``.safetensors``).

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptCheckpointError: the file is empty, truncated or not a torch / safetensors file (a ValueError).
        UnsafeCheckpointError: the file pickles a class or function outside the allow-list (named in the message);
            nothing from it is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    allow = tuple(allow)
    try:
        return _weights_only_load(path, allow, mmap)
    except PermissionError:
        raise
    except pickle.UnpicklingError as e:
        if not _looks_like_torch_file(path):
            raise _corrupt(path, e) from None
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in allow}
        try:
            offending = [g for g in _unsafe_globals(path, e) if g not in allowed]
        except _READ_ERRORS:
            offending = []
        what = f"pickled objects {offending}" if offending else "a pickled object"
        detail = next((ln.strip() for ln in str(e).splitlines() if "unsupported" in ln.lower()), "")
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains {what} outside the weights-only allow-list "
            f"(allowed: torch tensors and plain containers{', ' + ', '.join(sorted(allowed)) if allowed else ''}). "
            f"Nothing from the file was executed. If you trust the file, convert it yourself with "
            f"torch.load(weights_only=False) and save its tensors." + (f" [torch: {detail}]" if detail else "")
        ) from None
    except _READ_ERRORS as e:
        raise _corrupt(path, e) from None


def read_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (CPU)."""
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise _corrupt(Path(path), e, "safetensors file") from None


def safetensors_metadata(path: PathLike) -> Dict[str, str]:
    """The string->string metadata header of a ``.safetensors`` file (empty dict if none)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except SafetensorError as e:
        raise _corrupt(Path(path), e, "safetensors file") from None


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_path(path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return  # some platforms cannot open a directory; the file itself is synced
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """``write(file, tmp_path)`` into a temp file next to ``path``, fsync it, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f, tmp)
        # by path, not through f: a writer given tmp_path (safetensors) may have replaced the file
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600; give the usual permissions
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_path(path.parent, directory=True)  # make the rename itself durable


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to a temp file in the target folder, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    _atomic_write(path, lambda f, tmp: torch.save(obj, f))
    return path


def atomic_write_bytes(data: bytes, path: PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    path = Path(path)
    _atomic_write(path, lambda f, tmp: f.write(data))
    return path


def _contiguous_unshared(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Detached CPU tensors, contiguous, with no two sharing storage (safetensors refuses shared storage)."""
    out: Dict[str, torch.Tensor] = {}
    seen = set()
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state dict entry {k!r} is a {type(v).__name__}, expected a tensor")
        t = v.detach().to("cpu")
        storage = t.untyped_storage()
        whole = t.is_contiguous() and t.numel() * t.element_size() == storage.nbytes()
        if not whole or storage.data_ptr() in seen:  # a view, a slice or a tied weight: give it its own storage
            t = t.contiguous().clone()
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write tensors to a ``.safetensors`` file atomically.

    Non-contiguous tensors and tensors sharing storage (tied weights, views) are copied first. ``metadata`` must
    map str to str (safetensors' header format).
    """
    meta = dict(metadata or {})
    bad = {k: v for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise TypeError(f"safetensors metadata must map str to str; offending entries: {bad}")
    tensors = _contiguous_unshared(state_dict)
    path = Path(path)
    _atomic_write(path, lambda f, tmp: save_file(tensors, tmp, metadata=meta))
    return path
