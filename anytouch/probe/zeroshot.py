"""Touch -> text zero-shot classification with the stage-2 text tower (beyond the AnyTouch paper's evaluations).

Each class is the text prompt ``template.format(material=name)`` (default "This tactile image shows a {material}
surface."), encoded by the CLIP text tower; a touch image is assigned the class whose normalised text feature has
the highest cosine similarity with its normalised touch feature (docs/original/architecture.md#touch-feature: CLS
pooling, projected).

Class names of the 20 Touch and Go materials (:data:`TAG_MATERIAL_NAMES`, in label-id order) follow TAG's
``category_reference.txt`` as we recall it. We could not check that file (it is on TAG's Google Drive, not in
any repository we can read), so the list may be wrong; ``names_file=...`` replaces it with a file holding one name
per line in id order, or ``name: id`` lines as in ``category_reference.txt``.

    python -m anytouch.probe.zeroshot checkpoint=log/checkpoint.pth data.root=tactile_datasets
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import load_model
from ..config import load_config, parse_cli, save_config, to_dict
from ..data.config import DataConfig
from ..data.device_aug import touch_on_device
from ..engine.benchmark import resolve_device
from ..engine.data import resolve_workers
from ..engine.step import resolve_precision
from ..models import AnyTouchModel, get_arch
from ..train.config import RunConfig
from .tasks import build_split

__all__ = ["TAG_MATERIAL_NAMES", "DEFAULT_TEMPLATE", "read_class_names", "text_classifier", "zero_shot",
           "load_probe_model", "ZeroShotConfig", "main"]

TAG_MATERIAL_NAMES = (
    "concrete", "plastic", "glass", "wood", "metal", "brick", "tile", "leather", "synthetic fabric",
    "natural fabric", "rubber", "paper", "tree", "grass", "soil", "rock", "gravel", "sand", "plants", "others",
)
DEFAULT_TEMPLATE = "This tactile image shows a {material} surface."


def read_class_names(path: Union[str, Path]) -> List[str]:
    """Class names in label-id order from a file: one name per line, or ``name: id`` lines (any order)."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"class-name file {path} is empty")
    if not any(":" in ln for ln in lines):
        return lines
    by_id: Dict[int, str] = {}
    for n, ln in enumerate(lines, 1):
        name, sep, idx = ln.rpartition(":")
        try:
            i = int(idx)
        except ValueError:
            i = -1
        if not sep or not name.strip() or i < 0 or i in by_id:
            raise ValueError(f"{path}:{n}: {ln!r}; expected 'name: id' with a new non-negative integer id")
        by_id[i] = name.strip()
    missing = sorted(set(range(max(by_id) + 1)) - set(by_id))
    if missing:
        raise ValueError(f"{path}: no name for class id(s) {missing}")
    return [by_id[i] for i in range(len(by_id))]


@torch.inference_mode()
def text_classifier(model: AnyTouchModel, names: Sequence[str], template: str = DEFAULT_TEMPLATE) -> torch.Tensor:
    """(C, P) L2-normalised text features of the prompts of ``names``."""
    if "{material}" not in template:
        raise ValueError(f"template {template!r} has no '{{material}}' placeholder")
    return F.normalize(model.encode_text([template.format(material=n) for n in names]).float(), dim=-1)


@torch.inference_mode()
def zero_shot(model: AnyTouchModel, dataset: Dataset, names: Sequence[str], *, template: str = DEFAULT_TEMPLATE,
              sensor: int = 0, pooling: str = "cls", batch_size: int = 256, dtype: torch.dtype = torch.float32,
              num_workers: int = 0) -> Dict[str, Any]:
    """Zero-shot accuracy of ``model`` on a labelled touch dataset (samples with ``touch`` and ``label``).

    Returns:
        ``{"acc1", "acc5"}`` in percent (top-5 only when there are more than 5 classes), ``n`` samples and
        ``per_class`` (class name -> [hits, samples]).
    """
    device = next(model.parameters()).device
    classes = text_classifier(model, names, template).to(device)  # (C, P)
    k = min(5, len(names))
    hits1 = hits5 = n = 0
    per_class = torch.zeros(len(names), 2, dtype=torch.long)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        labels = batch["label"].to(device)
        if int(labels.max()) >= len(names):
            raise ValueError(f"label {int(labels.max())} has no class name ({len(names)} names given)")
        with autocast:
            feats = model.encode_touch(touch_on_device(batch["touch"], batch["touch_aug"], device), sensor, pooling)
        top = (F.normalize(feats.float(), dim=-1) @ classes.T).topk(k, dim=-1).indices  # (B, k)
        hit = top == labels[:, None]
        hits1 += int(hit[:, 0].sum())
        hits5 += int(hit.any(1).sum())
        n += labels.shape[0]
        per_class.index_add_(0, labels.cpu(), torch.stack([hit[:, 0].long().cpu(), torch.ones_like(labels.cpu())], 1))
    out = {"acc1": 100 * hits1 / n, "n": n,
           "per_class": {name: per_class[i].tolist() for i, name in enumerate(names) if per_class[i, 1]}}
    if len(names) > 5:
        out["acc5"] = 100 * hits5 / n
    return out


def load_probe_model(checkpoint: Optional[str], arch: Optional[str] = None, seed: int = 0) -> AnyTouchModel:
    """A stage-2 model (eval mode) from any checkpoint :func:`anytouch.checkpoint.load_model` reads, or ``random:<preset>``."""
    if not checkpoint:
        raise ValueError("checkpoint is required: a stage-2 AnyTouch / CLIP checkpoint, or random:<preset> for a "
                         "smoke test")
    if checkpoint.startswith("random:"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AnyTouchModel(get_arch(checkpoint.split(":", 1)[1]), towers=True)
    else:
        model = load_model(checkpoint, config=arch)
    if not model.has_towers:
        raise ValueError(f"{checkpoint} is a stage-1 checkpoint: it has no text tower; zero-shot needs stage 2")
    return model.eval().requires_grad_(False)


@dataclass
class ZeroShotConfig:
    """``python -m anytouch.probe.zeroshot [--config FILE] key=value ...``"""

    checkpoint: Optional[str] = None  # stage-2 checkpoint (ours / original / CLIP) or random:<preset>
    arch: Optional[str] = None  # original / CLIP files: preset or CLIP config.json
    dataset: str = "tag_material"
    split: str = "test"
    names_file: Optional[str] = None  # default: TAG_MATERIAL_NAMES
    template: str = DEFAULT_TEMPLATE
    sensor: int = 0
    pooling: str = "cls"
    batch_size: int = 256
    precision: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="log/zeroshot"))  # run.device, run.seed, ...


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    files, overrides = parse_cli(sys.argv[1:] if argv is None else argv, ZeroShotConfig, __doc__ or "",
                                 prog="python -m anytouch.probe.zeroshot")
    cfg = load_config(ZeroShotConfig, files, overrides)
    device = resolve_device(cfg.run.device)
    model = load_probe_model(cfg.checkpoint, cfg.arch, cfg.run.seed).to(device)
    names = read_class_names(cfg.names_file) if cfg.names_file else list(TAG_MATERIAL_NAMES)
    dataset = build_split(cfg.data, cfg.dataset, cfg.split, model.arch.touch.image_size)
    result = zero_shot(model, dataset, names, template=cfg.template, sensor=cfg.sensor, pooling=cfg.pooling,
                       batch_size=cfg.batch_size, dtype=resolve_precision(cfg.precision, device),
                       num_workers=resolve_workers(cfg.data.num_workers))
    out = Path(cfg.run.output_dir)
    save_config(cfg, out / "config.yaml")
    (out / "zeroshot.json").write_text(json.dumps({**result, "names": names, "config": to_dict(cfg)}, indent=1))
    top5 = f", top-5 {result['acc5']:.2f}%" if "acc5" in result else ""
    print(f"zero-shot {cfg.dataset} ({cfg.split}, {result['n']} samples, {len(names)} classes): "
          f"top-1 {result['acc1']:.2f}%{top5}  [{out / 'zeroshot.json'}]")
    return result


if __name__ == "__main__":
    main()
