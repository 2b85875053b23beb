"""Hub-layout folders: the Hugging Face model-repository layout for AnyTouch weights, and ``hf-hub:org/name`` ids.

A folder holds ``config.json`` (``library_name: "anytouch"``, the hub-layout version, the model family
(``"anytouch"`` or ``"anytouch2"``), what the weights are, our architecture (ArchConfig / AnyTouch2Config), the
sensors and the input contract (statistics, frames, frame stride, background subtraction), provenance: source
checkpoint, its sha256, library versions; and the probe numbers it was evaluated with, when given),
``model.safetensors`` (the weights alone, our key layout) and a
``README.md`` model card generated from the config (:func:`anytouch.checkpoint.card.model_card`).

``config.json`` is written last, so a folder whose writing was interrupted is not taken for a hub folder.
A hub id (``hf-hub:org/name``, optionally ``@revision``) is resolved to such a folder with
``huggingface_hub.snapshot_download`` and its cache (``HF_HUB_CACHE``); ``HF_HUB_OFFLINE=1`` or
``local_files_only=True`` keep it to the cache.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch.nn as nn

from .. import __version__
from ..models import AnyTouchModel, TouchEncoder, TouchMAE
from ..models.anytouch2 import AnyTouch2Encoder
from ..models.config import AnyTouch2Config, arch_from_dict
from ..preprocess import BACKGROUND_OFFSET, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from ..provenance import provenance
from ..sensors import FAMILY_SENSORS, SENSOR_IDS
from . import anytouch2, ours
from .card import model_card
from .common import CheckpointMismatchError, ConfigLike, ConversionReport, load_assign, on_meta
from .files import CheckpointFile, LoadedCheckpoint
from .io import _atomic_write, save_safetensors

__all__ = [
    "HUB_PREFIX", "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME", "HUB_VERSION", "FAMILIES", "is_hub_id", "resolve",
    "hub_config", "input_contract", "save_pretrained", "from_pretrained", "sha256_file", "detect_file", "read_file",
    "build",
]

HUB_PREFIX = "hf-hub:"
CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"
HUB_VERSION = 1
KINDS = ("stage1", "stage2", "encoder")
FAMILIES = ("anytouch", "anytouch2")  # folders written before AnyTouch 2 have no "family": AnyTouch 1
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

PathLike = Union[str, Path]


# -- hub ids -------------------------------------------------------------------------------------------------------
def is_hub_id(checkpoint: Any) -> bool:
    """True for a string ``hf-hub:org/name[@revision]``."""
    return isinstance(checkpoint, str) and checkpoint.startswith(HUB_PREFIX)


def _parse_hub_id(hub_id: str) -> Tuple[str, Optional[str]]:
    repo, _, revision = hub_id[len(HUB_PREFIX):].partition("@")
    if not _REPO_ID.match(repo):
        raise ValueError(f"{hub_id!r}: a hub id is {HUB_PREFIX}ORG/NAME (optionally @REVISION), "
                         f"e.g. {HUB_PREFIX}my-lab/anytouch-l14")
    return repo, revision or None


def resolve(checkpoint: PathLike, *, revision: Optional[str] = None, local_files_only: bool = False) -> Path:
    """A hub id -> the local snapshot folder holding it (downloaded into the Hugging Face cache unless it is there);
    anything else -> ``Path(checkpoint)`` unchanged.

    Args:
        checkpoint: ``hf-hub:org/name`` (``@revision`` selects a branch, tag or commit), or a path.
        revision: overrides the id's revision.
        local_files_only: use the cache only (also the case when ``HF_HUB_OFFLINE=1``).

    Raises:
        FileNotFoundError: the repository is not in the cache and cannot be downloaded (offline, or no such
            repository); the message names the id and ``HF_HUB_OFFLINE``.
    """
    if not is_hub_id(checkpoint):
        return Path(checkpoint)
    repo, rev = _parse_hub_id(checkpoint)
    import huggingface_hub  # here, not at the top: only hub ids need it (and it is slow to import)
    from huggingface_hub import constants, errors

    try:
        folder = huggingface_hub.snapshot_download(
            repo, revision=revision or rev, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
            local_files_only=local_files_only, library_name="anytouch", library_version=__version__)
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as e:
        offline = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE else (
            "local_files_only=True" if local_files_only else "the Hub could not be reached")
        raise FileNotFoundError(
            f"{checkpoint}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {offline}; download it once "
            f"with network access (unset HF_HUB_OFFLINE), or point HF_HUB_CACHE at a cache that holds it "
            f"[{type(e).__name__}]") from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
        raise FileNotFoundError(f"{checkpoint}: {type(e).__name__} on the Hugging Face Hub (a private repository "
                                "needs `hf auth login`)") from None
    return Path(folder)


# -- the format-registry handler (anytouch.checkpoint.formats) -----------------------------------------------------
def _read_config(folder: Path) -> Optional[Dict[str, Any]]:
    """The folder's config.json if it is an anytouch hub config, else None (never raises)."""
    try:
        cfg = json.loads((folder / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(cfg, dict) and cfg.get("library_name") == "anytouch" and "anytouch_hub_version" in cfg:
        return cfg
    return None


def detect_file(f: CheckpointFile) -> bool:
    """A ``model.safetensors`` next to a ``config.json`` that says ``library_name: anytouch``."""
    return f.path.name == WEIGHTS_NAME and _read_config(f.path.parent) is not None


def _checked_config(folder: Path) -> Dict[str, Any]:
    cfg = _read_config(folder)
    where = folder / CONFIG_NAME
    if cfg is None:
        raise ValueError(f"{where}: not an anytouch hub config (library_name 'anytouch' expected)")
    if cfg["anytouch_hub_version"] != HUB_VERSION:
        raise ValueError(f"{where}: anytouch_hub_version {cfg['anytouch_hub_version']!r} is not supported "
                         f"(expected {HUB_VERSION}); a newer anytouch wrote it")
    if cfg.get("kind") not in KINDS:
        raise ValueError(f"{where}: kind {cfg.get('kind')!r}; expected one of {KINDS}")
    family = cfg.setdefault("family", "anytouch")
    if family not in FAMILIES or (family == "anytouch2" and cfg["kind"] != "encoder"):
        raise ValueError(f"{where}: family {family!r} with kind {cfg['kind']!r}; expected one of {FAMILIES} (an "
                         "anytouch2 folder holds an encoder)")
    for key in ("arch", "provenance", "input", "sensors"):
        if not isinstance(cfg.get(key), dict):
            raise ValueError(f"{where}: entry {key!r} is missing or not a JSON object")
    return cfg


def read_file(f: CheckpointFile) -> Tuple[Dict[str, Any], None]:
    """Our checkpoint dict (:mod:`.ours` layout, kind ``"encoder"`` added) with the hub config under ``"hub"``;
    ``config.adapt.slots`` carries the adapted slots, as ``anytouch adapt`` records them."""
    cfg = _checked_config(f.path.parent)
    ckpt = {"format": ours.FORMAT, "version": ours.VERSION, "kind": cfg["kind"], "arch": cfg["arch"],
            "model": dict(f.obj), "config": {"adapt": {"slots": list(cfg.get("adapted_slots", []))}},
            "provenance": cfg["provenance"], "hub": cfg}
    return ckpt, None


def build(loaded: LoadedCheckpoint, what: str, config: ConfigLike, inflate: str,
          merge_lora: bool) -> Tuple[nn.Module, ConversionReport]:
    """As :func:`anytouch.checkpoint.ours.build`; a folder of kind ``"encoder"`` makes only an encoder (an AnyTouch 2
    folder also for ``what="model"``: the encoder is that family's only model)."""
    ckpt = loaded.content
    family = ckpt["hub"]["family"]
    if ckpt["kind"] != "encoder":
        return ours.build(loaded, what, config, inflate, merge_lora)
    if what != "encoder" and not (family == "anytouch2" and what == "model"):
        raise ValueError(f"{loaded.weights}: this hub folder holds only a touch encoder, not a {what!r}; "
                         "use anytouch.load_encoder")
    source = str(loaded.weights)
    if family == "anytouch2":
        return _build_anytouch2(ckpt, config, source)
    if config is not None:
        ours._check_own_arch(ckpt, config, loaded.weights)
    model = on_meta(lambda: TouchEncoder(arch_from_dict(ckpt["arch"])))
    load_assign(model, ckpt["model"], source, hint="the weights do not match the architecture in config.json")
    return model.eval(), ConversionReport(source, "hub_encoder")


def _build_anytouch2(ckpt: Dict[str, Any], config: ConfigLike, source: str) -> Tuple[nn.Module, ConversionReport]:
    """The AnyTouch 2 encoder of a hub folder; ``config=`` (a CLIP config.json or AnyTouch2Config) must describe the
    stored architecture."""
    arch = AnyTouch2Config.from_dict(ckpt["arch"])
    if config is not None:
        given = anytouch2.config_from_shapes(ckpt["model"], config, source, metadata=ckpt["arch"]).to_dict()
        diff = [k for k, v in arch.to_dict().items() if k != "name" and given[k] != v]
        if diff:
            raise CheckpointMismatchError(f"{source} carries its own architecture and config= does not match it "
                                          f"(differs in: {', '.join(diff)}); leave config= out")
    model = on_meta(lambda: AnyTouch2Encoder(arch))
    load_assign(model, ckpt["model"], source, hint="the weights do not match the architecture in config.json")
    return model.eval(), ConversionReport(source, "hub_encoder")


# -- writing -------------------------------------------------------------------------------------------------------
def sha256_file(path: PathLike, chunk: int = 1 << 22) -> str:
    """The hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _kind_and_state(module: nn.Module) -> Tuple[str, Dict[str, Any], Any]:
    if isinstance(module, TouchEncoder):
        return "encoder", module.state_dict(), module.arch
    if isinstance(module, AnyTouch2Encoder):
        return "encoder", module.state_dict(), module.config
    if isinstance(module, (AnyTouchModel, TouchMAE)):
        return ours._kind_and_state(module)
    raise TypeError(f"save_pretrained: cannot save a {type(module).__name__}; expected an AnyTouchModel, TouchMAE, "
                    "TouchEncoder or AnyTouch2Encoder")


def input_contract(family: str, arch: Any) -> Dict[str, Any]:
    """What the model expects as input (the ``input`` entry of config.json): image size, frames per clip, colour
    order and statistics; for AnyTouch 2 also the frame stride, the tube size and the background subtraction."""
    if family == "anytouch":
        return {"image_size": arch.touch.image_size, "frames": arch.num_frames, "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD), "channels": "RGB"}
    return {"image_size": arch.touch.image_size, "frames": arch.num_frames, "frame_stride": arch.frame_stride,
            "tube_size": arch.tube_size, "mean": list(CLIP_MEAN), "std": list(CLIP_STD), "channels": "RGB",
            "background": {"subtract": True, "offset": BACKGROUND_OFFSET, "before_resize": True}}


def _probe_record(probe: Union[None, PathLike, Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The rows of a probe ``results.json`` (a path or its parsed content)."""
    if probe is None:
        return None
    where = "probe"
    if isinstance(probe, (str, Path)):
        where = str(probe)
        try:
            probe = json.loads(Path(probe).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{where}: cannot read probe results ({e}); expected the results.json of anytouch eval")
    rows = probe.get("rows") if isinstance(probe, Mapping) else None
    need = ("task", "protocol", "rule_label", "accuracy")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) and all(k in r for k in need)
                                                         for r in rows):
        raise ValueError(f"{where}: expected probe results with a non-empty 'rows' list whose rows have "
                         f"{', '.join(need)} (the results.json of anytouch eval)")
    return {"rows": [dict(r) for r in rows]}


def hub_config(module: nn.Module, *, source: Optional[PathLike] = None, source_weights: Optional[PathLike] = None,
               source_format: Optional[str] = None, probe: Union[None, PathLike, Mapping[str, Any]] = None,
               adapted_slots: Sequence[int] = ()) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(config.json content, state dict)`` of ``module`` (see :func:`save_pretrained` for the arguments)."""
    kind, state, arch = _kind_and_state(module)
    family = "anytouch2" if isinstance(arch, AnyTouch2Config) else "anytouch"
    if source_weights is None and source is not None and Path(source).is_file():
        source_weights = source
    prov: Dict[str, Any] = {"source": None if source is None else str(source), "source_format": source_format,
                            "source_sha256": None if source_weights is None else sha256_file(source_weights),
                            **provenance()}
    cfg = {
        "library_name": "anytouch", "anytouch_hub_version": HUB_VERSION, "family": family, "kind": kind,
        "arch": arch.to_dict(), "sensors": {n: SENSOR_IDS[n] for n in FAMILY_SENSORS[family] + ("universal",)},
        "adapted_slots": sorted(int(s) for s in adapted_slots), "input": input_contract(family, arch),
        "provenance": prov,
    }
    record = _probe_record(probe)
    if record is not None:
        cfg["probe"] = record
    return cfg, state


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f, tmp: f.write(text.encode()))


def save_pretrained(module: nn.Module, folder: PathLike, *, source: Optional[PathLike] = None,
                    source_weights: Optional[PathLike] = None, source_format: Optional[str] = None,
                    probe: Union[None, PathLike, Mapping[str, Any]] = None, adapted_slots: Sequence[int] = ()) -> Path:
    """Write ``module`` as a hub-layout folder: ``model.safetensors``, ``README.md`` (generated card), ``config.json``.

    Args:
        module: an AnyTouchModel (stage 2, or towerless stage 1), a TouchMAE, a TouchEncoder or an
            AnyTouch2Encoder.
        folder: the output folder (created; existing files of these three names are replaced atomically).
        source: the checkpoint the weights came from, as the user named it (path or hub id), recorded.
        source_weights: the file whose sha256 is recorded (default: ``source`` when it is a file).
        source_format: its format name (``"original_stage2"``, ...), recorded.
        probe: probe results the card reports: the ``results.json`` of ``anytouch eval`` (path or parsed dict).
        adapted_slots: sensor slots trained by ``anytouch adapt`` (listed as usable sensor ids).

    Returns:
        The folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"save_pretrained: {folder} is a file; expected a folder (new or existing)")
    cfg, state = hub_config(module, source=source, source_weights=source_weights, source_format=source_format,
                            probe=probe, adapted_slots=adapted_slots)
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(state, folder / WEIGHTS_NAME, {"format": "pt"})
    _write_text(folder / CARD_NAME, model_card(cfg))
    _write_text(folder / CONFIG_NAME, json.dumps(cfg, indent=1) + "\n")  # last: marks the folder complete
    return folder


def from_pretrained(name_or_path: PathLike, what: Optional[str] = None, *, revision: Optional[str] = None,
                    local_files_only: bool = False) -> nn.Module:
    """Load a hub-layout folder or hub id (eval mode): the AnyTouchModel (``what="model"``, the default for
    stage-1/2 folders) or the touch encoder (``what="encoder"``, the default for encoder-only folders: a TouchEncoder,
    or an AnyTouch2Encoder for an AnyTouch 2 folder).

    Args:
        name_or_path: ``hf-hub:org/name[@revision]`` or a folder (any checkpoint ``load_model`` reads works too).
        revision, local_files_only: as in :func:`resolve`.
    """
    from .load import build as build_module, read_checkpoint  # here: load imports the registry, which imports us

    loaded = read_checkpoint(resolve(name_or_path, revision=revision, local_files_only=local_files_only))
    if what is None:
        what = "encoder" if loaded.kind == "encoder" else "model"
    return build_module(loaded, what)[0]
