"""Loading AnyTouch models from any supported checkpoint: ``load_model`` and ``load_encoder``.

Detected formats (in this order):

1. our checkpoints: a ``.pt``/``.pth`` dict with ``format == "anytouch"``, or an exported ``.safetensors`` whose
   metadata says so (:mod:`anytouch.checkpoint.ours`);
   AnyTouch 2 files (released encoders, upstream probe files, our export; :mod:`anytouch.checkpoint.anytouch2`),
   recognised by their 5-D RGB patch conv and ``new_position_ids``;
2. the original AnyTouch stage-2 and stage-1 files (:mod:`anytouch.checkpoint.original`; their ``args`` Namespace is
   the only non-tensor object the loader accepts);
3. a Hugging Face CLIP folder or weights file, or an open_clip state dict: the CLIP-initialised model of spec 2.4 /
   2.5 (:mod:`anytouch.checkpoint.hf_clip`, :mod:`anytouch.checkpoint.open_clip`).

Every load is strict; whatever is deliberately skipped is named, with the reason, in the conversion report (logged
at INFO on the ``anytouch.checkpoint`` logger, and returned with ``return_report=True``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

from .checkpoint import anytouch2, hf_clip, open_clip, original, ours
from .checkpoint.common import CheckpointMismatchError, ConversionReport, load_assign, on_meta
from .checkpoint.io import ORIGINAL_ALLOW, safe_load, safetensors_metadata
from .models import AnyTouchModel, TouchEncoder
from .models.config import ARCH_PRESETS, ArchConfig, arch_from_dict, arch_from_hf_config, get_arch

__all__ = ["load_model", "load_encoder", "read_checkpoint"]

PathLike = Union[str, Path]
ConfigLike = Union[None, str, Path, ArchConfig, Mapping[str, Any]]

# weights file names looked for in a folder, in order (HF CLIP, then open_clip hub names)
_FOLDER_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        for name in _FOLDER_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path}: a checkpoint folder must hold one of {', '.join(_FOLDER_FILES)}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def read_checkpoint(checkpoint: PathLike) -> Tuple[str, Any, Path, Optional[ConversionReport]]:
    """Read a checkpoint file or folder and detect its format.

    Returns:
        ``(format, content, weights file, report)`` with format one of ``"ours"`` (content: our checkpoint dict),
        ``"anytouch2"`` (content: the AnyTouch 2 file as read),
        ``"original_stage2"``, ``"original_stage1"``, ``"hf_clip"`` (content: the state dict) or ``"open_clip"``
        (content: already converted to the HF CLIP layout; ``report`` is that conversion's, else None).
    """
    path = _weights_file(Path(checkpoint))
    if path.suffix == ".safetensors" and safetensors_metadata(path).get("format") == ours.FORMAT:
        return "ours", ours.load_safetensors(path), path, None
    obj = safe_load(path, allow=ORIGINAL_ALLOW)
    if ours.detect(obj):
        return "ours", obj, path, None
    # >>> AnyTouch 2 hook (moves into the checkpoint format registry): detect by content, load in checkpoint.anytouch2
    if anytouch2.detect(obj):
        return anytouch2.FORMAT, obj, path, None
    # <<< AnyTouch 2 hook
    sd = obj
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        sd = original.unwrap_container(obj)
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        sd = open_clip.unwrap(obj)
    if not isinstance(sd, Mapping):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict, got a {type(sd).__name__}")
    if original.detect_stage2(sd):
        return "original_stage2", sd, path, None
    if original.detect_stage1(sd):
        return "original_stage1", sd, path, None
    if hf_clip.detect(sd):
        return "hf_clip", sd, path, None
    if open_clip.detect(open_clip.unwrap(sd)):
        hf, report = open_clip.open_clip_to_hf(open_clip.unwrap(sd), str(path))
        return "open_clip", hf, path, report
    keys = list(sd)[:6]
    raise ValueError(
        f"{path}: unrecognised checkpoint (first keys: {keys}); expected an anytouch checkpoint, an original "
        "AnyTouch stage-1/stage-2 file, a Hugging Face CLIP state dict or an open_clip state dict"
    )


def _explicit_arch(config: ConfigLike) -> Optional[ArchConfig]:
    """An ArchConfig / dict / preset name is used as is; a path is a CLIP config.json (returns None)."""
    if isinstance(config, (ArchConfig, Mapping)) or (isinstance(config, str) and config in ARCH_PRESETS):
        return get_arch(config)
    return None


def _clip_arch(sd, config: ConfigLike, weights: Path) -> ArchConfig:
    arch = _explicit_arch(config)
    if arch is not None:
        return arch
    if config is not None:
        return arch_from_hf_config(config)
    if (weights.parent / "config.json").is_file() and weights.name in ("model.safetensors", "pytorch_model.bin"):
        return arch_from_hf_config(weights.parent)  # the HF folder layout: its config.json describes these weights
    return hf_clip.arch_from_hf_state_dict(sd)


def _from_clip(sd, config, weights: Path, what: str, pre: Optional[ConversionReport], inflate: str):
    arch = _clip_arch(sd, config, weights)
    src = str(weights)
    if what == "encoder":
        enc = TouchEncoder(arch)
        target = {"encoder." + k: v for k, v in enc.state_dict().items()}
        conv, report = hf_clip.hf_to_stage1(sd, target, src, inflate=inflate)
        model = load_assign(enc, {k[len("encoder."):]: v for k, v in conv.items()}, src)
    else:
        model = AnyTouchModel(arch, towers=True)
        conv, report = hf_clip.hf_to_stage2(sd, model.state_dict(), src, inflate=inflate, logit_scale=arch.logit_scale_init)
        load_assign(model, conv, src)
    if pre is not None:  # open_clip -> HF step
        report.format = pre.format
        report.ignored[:0], report.notes[:0] = pre.ignored, pre.notes
    return model, report


def _from_original(sd, config, weights: Path, what: str, fmt: str, merge_lora: bool):
    stage2 = fmt == "original_stage2"
    arch = original.arch_from_original(sd, config, towers=stage2 and what == "model")
    src = str(weights)
    file_rank = next((int(v.shape[0]) for k, v in sd.items() if k.endswith("lora_A.default.weight")), 0)
    if stage2 and what == "model" and file_rank and file_rank != arch.lora_rank:
        raise CheckpointMismatchError(
            f"{src}: the vision LoRA has rank {file_rank} in the file but the architecture says lora_rank="
            f"{arch.lora_rank}; the merge scale alpha/r would be wrong (pass a matching config=)"
        )
    scale = arch.lora_alpha / arch.lora_rank if (merge_lora and file_rank) else None
    if what == "encoder":
        model = on_meta(lambda: TouchEncoder(arch))
    else:
        model = on_meta(lambda: AnyTouchModel(arch, towers=stage2, lora=not merge_lora))
    conv, report = original.from_original(sd, model.state_dict(), src, lora_scale=scale)
    if scale is not None:
        report.notes.append(f"LoRA merge scale alpha/r = {arch.lora_alpha:g}/{arch.lora_rank}")
    load_assign(model, conv, src)
    return model, report


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
    explicit = _explicit_arch(config)
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


def _load(checkpoint: PathLike, config: ConfigLike, what: str, inflate: str = "repeat", merge_lora: bool = True):
    fmt, content, weights, pre = read_checkpoint(checkpoint)
    # >>> AnyTouch 2 hook: the family has one model, its encoder (returned by load_model and load_encoder alike)
    if fmt == anytouch2.FORMAT:
        model, report = anytouch2.load(content, config, str(weights), metadata=anytouch2.file_metadata(weights))
        report.log()
        return model, report
    # <<< AnyTouch 2 hook
    if fmt == "ours":
        if config is not None:
            _check_own_arch(content, config, weights)
        model, report = ours.build_model(content, what="encoder" if what == "encoder" else "model", source=str(weights))
    elif fmt.startswith("original"):
        model, report = _from_original(content, config, weights, what, fmt, merge_lora)
    else:
        model, report = _from_clip(content, config, weights, what, pre, inflate)
    report.log()
    return model.eval(), report


def load_model(checkpoint: PathLike, config: ConfigLike = None, *, inflate: str = "repeat", merge_lora: bool = True,
               return_report: bool = False):
    """Load an :class:`~anytouch.models.AnyTouchModel` (eval mode) from any supported checkpoint.

    Args:
        checkpoint: file or folder: our ``.pt``/``.pth``/``.safetensors``, an original AnyTouch stage-1 or stage-2
            file, or a CLIP checkpoint (HF folder / ``pytorch_model.bin`` / ``model.safetensors``, or open_clip).
            A stage-1 file gives a model without vision/text towers (``encode_vision`` / ``encode_text`` raise).
            A CLIP checkpoint gives the CLIP-initialised stage-2 model (spec 2.4 / 2.5).
        config: for original and CLIP files: the CLIP ``config.json`` (or its folder) that supplies head counts and
            activations, or an ArchConfig / preset name. Optional: without it the sizes are inferred from the
            tensors (heads = width // 64 for the towers, 16 for the decoder). Our own files carry their
            architecture: a config given for them must match it (else CheckpointMismatchError naming the first
            differing field).
        inflate: CLIP patch-conv inflation, ``"repeat"`` (original) or ``"mean"``.
        merge_lora: fold the vision LoRA of an original stage-2 file into the base weights (W + alpha/r·B·A).
        return_report: also return the :class:`~anytouch.checkpoint.common.ConversionReport`.

    An AnyTouch 2 file (released encoder, probe file or our export; recognised by content) gives its
    :class:`~anytouch.models.anytouch2.AnyTouch2Encoder`, the only model of that family; ``config`` is then its
    CLIP ``config.json`` (heads, image size), optional for ViT-B/16 at 224.
    """
    model, report = _load(checkpoint, config, "model", inflate, merge_lora)
    return (model, report) if return_report else model


def load_encoder(checkpoint: PathLike, config: ConfigLike = None, *, inflate: str = "repeat",
                 return_report: bool = False):
    """Load only the :class:`~anytouch.models.TouchEncoder` (eval mode) from any supported checkpoint.

    Same arguments as :func:`load_model`; keys outside the touch encoder (decoder, towers, heads) are reported as
    ignored. ``encoder(touch, sensor)`` gives the (B, projection_dim) feature of spec 1.8.
    """
    model, report = _load(checkpoint, config, "encoder", inflate)
    return (model, report) if return_report else model
