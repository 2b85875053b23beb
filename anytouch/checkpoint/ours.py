"""Our checkpoint format (docs/design.md): plain dicts that ``torch.load(weights_only=True)`` reads.

``{"format": "anytouch", "version": 1, "kind": "stage1" | "stage2", "arch": ArchConfig.to_dict(), "model": state_dict,
"config": resolved run config (plain dict) | None, "optimizer"?, "scaler"?, "epoch"?, "step"?, "rng"?, "data_state"?}``

``kind == "stage1"``: ``model`` is a TouchMAE state dict; ``"stage2"``: an AnyTouchModel state dict (its vision
tower with LoRA A/B, or merged, as the keys show). Releases are safetensors files of the weights alone, with
``format``, ``version``, ``kind`` and the arch (JSON) in the header metadata (:func:`export_safetensors`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from ..models import AnyTouchModel, TouchEncoder, TouchMAE
from ..models.config import ArchConfig, arch_from_dict, arch_from_hf_config
from ..provenance import provenance
from .common import CheckpointMismatchError, ConfigLike, ConversionReport, explicit_arch, load_assign, on_meta
from .files import CheckpointFile, LoadedCheckpoint
from .io import atomic_save, read_safetensors, safe_load, safetensors_metadata, save_safetensors

__all__ = [
    "FORMAT", "VERSION", "KINDS", "detect", "make_checkpoint", "save_checkpoint", "load_checkpoint",
    "build_model", "export_safetensors", "load_safetensors", "is_ours_safetensors",
    "detect_file", "read_file", "build",
]

FORMAT, VERSION, KINDS = "anytouch", 1, ("stage1", "stage2")
_PLAIN = (str, int, float, bool, type(None))


def detect(obj: object) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def _check_plain(x: Any, where: str) -> None:
    """Only values ``torch.load(weights_only=True)`` can read back: plain containers, scalars and tensors."""
    if type(x) in _PLAIN or isinstance(x, torch.Tensor):  # exact types: a str subclass (torch.__version__) pickles
        return                                            # as its class, which weights_only loading refuses
    if isinstance(x, Mapping):
        for k, v in x.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint entry {where} has a key of type {type(k).__name__}; expected str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint entry {where} is a {type(x).__module__}.{type(x).__qualname__}; only tensors, "
                    "numbers, strings, None and dicts/lists of them may be saved (convert it to a plain value)")


def _kind_and_state(model: nn.Module) -> Tuple[str, Dict[str, torch.Tensor], ArchConfig]:
    if isinstance(model, AnyTouchModel):
        if not model.has_towers:  # a stage-1 model behind the stage-2 interface: save the TouchMAE
            return "stage1", model.touch.state_dict(), model.arch
        return "stage2", model.state_dict(), model.arch
    if isinstance(model, TouchMAE):
        return "stage1", model.state_dict(), model.arch
    raise TypeError(f"cannot checkpoint a {type(model).__name__}; expected AnyTouchModel or TouchMAE")


def make_checkpoint(model: nn.Module, config: Optional[Mapping] = None, **extra: Any) -> Dict[str, Any]:
    """The checkpoint dict of ``model`` (AnyTouchModel or TouchMAE) with the resolved run ``config`` (plain dict).

    ``provenance`` records the versions, git commit and time (:mod:`anytouch.provenance`).
    ``extra`` may add ``optimizer``, ``scaler``, ``epoch``, ``step``, ``rng``, ``data_state`` (plain values and tensors).
    Raises TypeError naming the entry if anything would need pickling beyond that (e.g. an argparse Namespace).
    """
    kind, state, arch = _kind_and_state(model)
    ckpt = {"format": FORMAT, "version": VERSION, "kind": kind, "arch": arch.to_dict(), "model": state,
            "config": dict(config) if config is not None else None, "provenance": provenance()}
    for k, v in extra.items():
        if k in ckpt:
            raise ValueError(f"extra checkpoint entry {k!r} would overwrite a reserved entry")
        ckpt[k] = v
    _check_plain({k: v for k, v in ckpt.items() if k != "model"}, "ckpt")
    return ckpt


def save_checkpoint(path: Union[str, Path], model: nn.Module, config: Optional[Mapping] = None, **extra: Any) -> Path:
    """Atomically save :func:`make_checkpoint` to ``path``."""
    return atomic_save(make_checkpoint(model, config, **extra), path)


def _validate(ckpt: Mapping, source: str) -> Dict[str, Any]:
    if ckpt.get("format") != FORMAT:
        raise ValueError(f"{source}: not an anytouch checkpoint (format={ckpt.get('format')!r}, expected {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{source}: checkpoint version {ckpt.get('version')!r} is not supported (expected {VERSION})")
    if ckpt.get("kind") not in KINDS:
        raise ValueError(f"{source}: checkpoint kind {ckpt.get('kind')!r}; expected one of {KINDS}")
    for k in ("arch", "model"):
        if not isinstance(ckpt.get(k), Mapping):
            raise ValueError(f"{source}: checkpoint entry {k!r} is missing or not a dict")
    return dict(ckpt)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load one of our checkpoints (``.pt``/``.pth`` dict, or an exported ``.safetensors``) weights-only."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    return _validate(safe_load(path), str(path))


def build_model(ckpt: Mapping[str, Any], what: str = "model", source: str = "<checkpoint>") -> Tuple[nn.Module, ConversionReport]:
    """Build the module a checkpoint describes and load its weights strictly.

    Args:
        ckpt: a checkpoint dict (from :func:`load_checkpoint`).
        what: ``"model"`` -> AnyTouchModel (towerless for stage 1); ``"mae"`` -> TouchMAE; ``"encoder"`` ->
            TouchEncoder (other keys reported as ignored).

    Returns:
        ``(module, report)``, the module in eval mode.
    """
    ckpt = _validate(ckpt, source)
    arch = arch_from_dict(ckpt["arch"])
    sd = dict(ckpt["model"])
    report = ConversionReport(source, f"anytouch_{ckpt['kind']}")
    if "step" in ckpt:
        report.notes.append(f"saved at epoch {ckpt.get('epoch')}, step {ckpt['step']}")
    stage2 = ckpt["kind"] == "stage2"
    touch_root = "touch." if stage2 else ""
    if what == "model":
        lora = any(k.startswith("vision.") and k.endswith(".lora_A") for k in sd)
        model = on_meta(lambda: AnyTouchModel(arch, towers=stage2, lora=lora))
        if not stage2:
            sd = {"touch." + k: v for k, v in sd.items()}
    elif what in ("mae", "encoder"):
        keep = touch_root + ("encoder." if what == "encoder" else "")
        model = on_meta(lambda: TouchEncoder(arch) if what == "encoder" else TouchMAE(arch))
        for k in [k for k in sd if not k.startswith(keep)]:
            report.ignore(k, f"not part of the {type(model).__name__} being loaded")
        sd = {k[len(keep):]: v for k, v in sd.items() if k.startswith(keep)}
    else:
        raise ValueError(f"what={what!r}; expected 'model', 'mae' or 'encoder'")
    load_assign(model, sd, source, hint="the weights do not match the architecture stored with them (damaged or edited file?)")
    return model.eval(), report


def _metadata(ckpt: Mapping[str, Any]) -> Dict[str, str]:
    meta = {"format": FORMAT, "version": str(VERSION), "kind": ckpt["kind"], "arch": json.dumps(ckpt["arch"])}
    if ckpt.get("provenance"):  # older checkpoints of ours have none
        meta["provenance"] = json.dumps(ckpt["provenance"])
    return meta


def export_safetensors(ckpt: Union[Mapping[str, Any], str, Path], path: Union[str, Path]) -> Path:
    """Write the weights of a checkpoint (dict or file) to ``path`` as safetensors, without optimizer state.

    The header metadata holds ``format``, ``version``, ``kind``, ``arch`` (JSON) and ``provenance`` (JSON), so the
    file loads on its own.
    """
    if not isinstance(ckpt, Mapping):
        ckpt = load_checkpoint(ckpt)
    ckpt = _validate(ckpt, "<checkpoint>")
    return save_safetensors(ckpt["model"], path, _metadata(ckpt))


def is_ours_safetensors(path: Union[str, Path]) -> bool:
    return safetensors_metadata(path).get("format") == FORMAT


def load_safetensors(path: Union[str, Path]) -> Dict[str, Any]:
    """An exported safetensors file -> a checkpoint dict (``config`` None, no training state)."""
    meta = safetensors_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: safetensors metadata has format={meta.get('format')!r}, expected {FORMAT!r} "
                         "(is this a CLIP weights file? use anytouch.load_model, which detects those)")
    try:
        version = int(meta.get("version", ""))
    except ValueError:
        raise ValueError(f"{path}: safetensors metadata version={meta.get('version')!r} is not an integer") from None
    try:
        arch = json.loads(meta["arch"])
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: safetensors metadata has no valid 'arch' JSON ({e})") from None
    ckpt = {"format": FORMAT, "version": version, "kind": meta.get("kind"), "arch": arch,
            "model": read_safetensors(path), "config": None}
    if "provenance" in meta:
        try:
            ckpt["provenance"] = json.loads(meta["provenance"])
        except json.JSONDecodeError:
            ckpt["provenance"] = {"unparsed": meta["provenance"]}
    return _validate(ckpt, str(path))


# -- the format-registry handler (anytouch.checkpoint.formats) -----------------------------------------------------
def detect_file(f: CheckpointFile) -> bool:
    """An exported safetensors file (told by its header alone) or a dict with ``format == "anytouch"``."""
    return f.metadata.get("format") == FORMAT or detect(f.obj)


def read_file(f: CheckpointFile) -> Tuple[Dict[str, Any], None]:
    return (load_safetensors(f.path) if f.metadata.get("format") == FORMAT else f.obj), None


# the ArchConfig fields a CLIP config.json determines (the rest comes from a base preset, see arch_from_hf_config)
_HF_CONFIG_FIELDS = ("projection_dim", "touch", "vision", "text")


def _first_difference(stored: Mapping[str, Any], given: Mapping[str, Any],
                      prefix: str = "") -> Optional[Tuple[str, Any, Any]]:
    """``(dotted field, stored value, given value)`` of the first field where two ``ArchConfig.to_dict()`` differ."""
    for key, a in stored.items():
        b = given.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diff = _first_difference(a, b, f"{prefix}{key}.")
            if diff is not None:
                return diff
        elif a != b:
            return f"{prefix}{key}", a, b
    return None


def _check_own_arch(ckpt: Mapping[str, Any], config: ConfigLike, weights: Path) -> None:
    """``config=`` given for our checkpoint: accept it only if it describes the architecture stored in the file.

    A preset / ArchConfig / dict is compared on every field but ``name``; a CLIP config.json on the fields it
    determines (projection size and the touch, vision and text towers).
    """
    stored = arch_from_dict(ckpt["arch"]).to_dict()
    explicit = explicit_arch(config)
    given = (explicit if explicit is not None else arch_from_hf_config(config)).to_dict()
    fields = [k for k in stored if k != "name"] if explicit is not None else list(_HF_CONFIG_FIELDS)
    diff = _first_difference({k: stored[k] for k in fields}, {k: given[k] for k in fields})
    if diff is not None:
        field, a, b = diff
        shown = f"config={str(config)!r}" if isinstance(config, (str, Path)) else "config="
        raise CheckpointMismatchError(
            f"{weights} carries its own architecture ({stored['name']!r}) and {shown} does not match it: {field} is "
            f"{a!r} in the checkpoint but {b!r} in the config; leave config= out to use the stored architecture"
        )


def build(loaded: LoadedCheckpoint, what: str, config: ConfigLike, inflate: str,
          merge_lora: bool) -> Tuple[nn.Module, ConversionReport]:
    """The module ``what`` names, built from the architecture stored in the file (``config=`` must match it;
    ``inflate`` and ``merge_lora`` do not apply: our files hold no CLIP kernels, and LoRA stays as saved)."""
    if config is not None:
        _check_own_arch(loaded.content, config, loaded.weights)
    return build_model(loaded.content, what=what, source=str(loaded.weights))
