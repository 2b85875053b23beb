"""Cross-sensor retrieval on TacQuad (beyond the AnyTouch paper's evaluations): does the encoder map one contact seen
through different sensors to nearby features?

TacQuad records each contact (one row of its contact index, one object) with several sensors (GelSight Mini, DIGIT,
DuraGel). For every ordered pair of sensors (query a, gallery b) and every contact seen by both, the query is
searched among b's entries by cosine similarity; recall@k is the share of queries whose own contact is among the
top k. ``level="contact"`` (default) averages the L2-normalised frame features of a contact per sensor (one query
and one gallery entry per contact); ``level="frame"`` uses every frame as a query against all frames of b (a hit if
any of the top k frames shows the same contact).

    python -m anytouch.probe.retrieval checkpoint=log/checkpoint.pth data.root=tactile_datasets
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..config import load_config, parse_cli, save_config, to_dict
from ..data.config import DataConfig
from ..data.device_aug import touch_on_device
from ..engine.benchmark import resolve_device
from ..engine.data import resolve_workers
from ..engine.step import resolve_precision
from ..sensors import SENSOR_IDS
from .runner import load_probe_encoder
from ..train.config import RunConfig
from .tasks import build_split

__all__ = ["embed", "recall_at_k", "cross_sensor_retrieval", "RetrievalConfig", "main"]

SENSOR_NAMES = {v: k for k, v in SENSOR_IDS.items()}


@torch.inference_mode()
def embed(encoder, dataset: Dataset, *, sensor: Optional[int] = None, pooling: str = "cls", batch_size: int = 256,
          dtype: torch.dtype = torch.float32, num_workers: int = 0) -> Tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """L2-normalised features of every sample of a TacQuad-like set.

    Args:
        dataset: samples with ``touch`` and ``sensor``; the dataset must expose ``object_ids`` (the contact of each
            sample) and ``sensor_ids``, like ``build_dataset("tacquad", clip="image")`` and its synthetic twin.
        sensor: the sensor token for every sample; None = each sample's own sensor id.
    Returns:
        (features (N, P) float32 on CPU, sensor ids (N,), contact ids (N,)).
    """
    for attr in ("object_ids", "sensor_ids"):
        if getattr(dataset, attr, None) is None:
            raise TypeError(f"{type(dataset).__name__} has no '{attr}' attribute; cross-sensor retrieval needs the "
                            "contact and sensor of every sample (use build_dataset('tacquad', clip='image'))")
    device = next(encoder.parameters()).device
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    feats = []
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        s = batch["sensor"].to(device) if sensor is None else sensor
        with autocast:
            feats.append(encoder(touch_on_device(batch["touch"], batch["touch_aug"], device), s, pooling).float().cpu())
    return (F.normalize(torch.cat(feats), dim=-1), np.asarray(dataset.sensor_ids, dtype=np.int64),
            np.asarray(dataset.object_ids, dtype=np.int64))


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, query_keys: np.ndarray, gallery_keys: np.ndarray,
                ks: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Share (in percent) of queries with an entry of the same key among their k most similar gallery entries.

    query (Q, P), gallery (M, P): L2-normalised; keys: (Q,), (M,) ints.
    """
    k_max = min(max(ks), gallery.shape[0])
    top = (query @ gallery.T).topk(k_max, dim=-1).indices.numpy()  # (Q, k_max)
    hit = gallery_keys[top] == query_keys[:, None]
    return {k: 100.0 * float(hit[:, :k].any(1).mean()) for k in ks}


def _contact_means(feats: torch.Tensor, contacts: np.ndarray) -> Tuple[torch.Tensor, np.ndarray]:
    keys = np.unique(contacts)
    means = torch.stack([feats[torch.from_numpy(contacts == c)].mean(0) for c in keys])
    return F.normalize(means, dim=-1), keys


def cross_sensor_retrieval(feats: torch.Tensor, sensors: np.ndarray, contacts: np.ndarray, ks: Sequence[int] = (1, 5),
                           level: str = "contact") -> List[Dict[str, Any]]:
    """Recall@k for every ordered pair of distinct sensors, over the contacts seen by both (see module docstring)."""
    if level not in ("contact", "frame"):
        raise ValueError(f"level={level!r}; expected 'contact' or 'frame'")
    rows = []
    ids = sorted(set(sensors.tolist()))
    for a in ids:
        for b in ids:
            if a == b:
                continue
            shared = np.intersect1d(contacts[sensors == a], contacts[sensors == b])
            if not shared.size:
                continue
            qa = (sensors == a) & np.isin(contacts, shared)
            gb = sensors == b
            q, qk = feats[torch.from_numpy(qa)], contacts[qa]
            g, gk = feats[torch.from_numpy(gb)], contacts[gb]
            if level == "contact":
                (q, qk), (g, gk) = _contact_means(q, qk), _contact_means(g, gk)
            rec = recall_at_k(q, g, qk, gk, ks)
            rows.append({"query": SENSOR_NAMES.get(a, str(a)), "gallery": SENSOR_NAMES.get(b, str(b)),
                         **{f"R@{k}": round(v, 2) for k, v in rec.items()}, "queries": int(q.shape[0]),
                         "gallery_size": int(g.shape[0]), "contacts": int(shared.size)})
    if not rows:
        raise ValueError("no contact is seen by two different sensors; nothing to retrieve")
    return rows


@dataclass
class RetrievalConfig:
    """``python -m anytouch.probe.retrieval [--config FILE] key=value ...``"""

    checkpoint: Optional[str] = None  # any encoder checkpoint, or random:<preset>
    arch: Optional[str] = None
    sensor: Optional[int] = None  # sensor token for every frame; null = the frame's own sensor
    pooling: str = "cls"
    level: str = "contact"  # contact | frame
    ks: List[int] = field(default_factory=lambda: [1, 5])
    batch_size: int = 256
    precision: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="log/retrieval"))  # run.device, run.seed, ...


def _table(rows: Sequence[Dict[str, Any]], ks: Sequence[int]) -> str:
    head = "| query | gallery | " + " | ".join(f"R@{k}" for k in ks) + " | queries | gallery |"
    lines = [head, "|---|---|" + "---:|" * (len(ks) + 2)]
    lines += ["| {query} | {gallery} | ".format(**r) + " | ".join(f"{r[f'R@{k}']:.2f}" for k in ks)
              + f" | {r['queries']} | {r['gallery_size']} |" for r in rows]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    files, overrides = parse_cli(sys.argv[1:] if argv is None else argv, RetrievalConfig, __doc__ or "",
                                 prog="python -m anytouch.probe.retrieval")
    cfg = load_config(RetrievalConfig, files, overrides)
    device = resolve_device(cfg.run.device)
    encoder = load_probe_encoder(cfg.checkpoint, cfg.arch, cfg.run.seed).to(device)
    dataset = build_split(cfg.data, "tacquad", "train", encoder.image_size, clip="image", stage=1, train=False)
    feats, sensors, contacts = embed(encoder, dataset, sensor=cfg.sensor, pooling=cfg.pooling,
                                     batch_size=cfg.batch_size, dtype=resolve_precision(cfg.precision, device),
                                     num_workers=resolve_workers(cfg.data.num_workers))
    rows = cross_sensor_retrieval(feats, sensors, contacts, cfg.ks, cfg.level)
    out = Path(cfg.run.output_dir)
    save_config(cfg, out / "config.yaml")
    (out / "retrieval.json").write_text(json.dumps({"rows": rows, "config": to_dict(cfg)}, indent=1))
    print(f"cross-sensor retrieval on TacQuad ({len(contacts)} frames, {cfg.level} level):\n{_table(rows, cfg.ks)}")
    return rows


if __name__ == "__main__":
    main()
