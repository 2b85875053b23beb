"""t-SNE of touch embeddings coloured by sensor and by label: the paper's picture of several sensors sharing one
space (AnyTouch, ICLR 2025) -- after alignment, frames of the same material from different sensors land together.

t-SNE is scikit-learn's (van der Maaten & Hinton 2008). Next to the picture we report a number that does not depend
on the 2-D layout: the fraction of each embedding's k nearest neighbours (cosine, in the full space) that share its
sensor, and that share its label. Sensors sharing one space = low same-sensor, high same-label agreement.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..data.device_aug import stack_touch
from ..data.synthetic_render import LOOKS, TAG_MATERIALS, random_scene, render_touch
from ..preprocess import preprocess_touch
from ..sensors import SENSOR_IDS, sensor_id
from .common import pyplot, save_png

__all__ = ["collect_embeddings", "synthetic_sensor_set", "tsne_2d", "neighbour_agreement", "plot_tsne"]

SENSOR_NAMES = {v: k for k, v in SENSOR_IDS.items()}


@torch.no_grad()
def collect_embeddings(encoder, dataset, batch_size: int = 64, max_samples: Optional[int] = None,
                       sensor=None, pooling: str = "cls") -> Dict[str, np.ndarray]:
    """Embed the ``touch`` of every sample of ``dataset`` (a map-style dataset of sample dicts, docs/design.md).

    ``sensor`` overrides the samples' own ids. Labels are the samples' ``label`` or, when absent, their ``source``.
    Returns {"features": (N, P) float32, "sensors": (N,) int, "labels": (N,) str}.
    """
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    dev = next(encoder.parameters()).device
    override = None if sensor is None else sensor_id(sensor)
    feats, sensors, labels = [], [], []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        touch = stack_touch(items, dev)
        ids = [int(it["sensor"]) if override is None else override for it in items]
        feats.append(encoder(touch, ids, pooling=pooling).float().cpu())
        sensors += ids
        labels += [str(it.get("label", it.get("source", "?"))) for it in items]
    return {"features": torch.cat(feats).numpy(), "sensors": np.asarray(sensors), "labels": np.asarray(labels)}


def synthetic_sensor_set(num_materials: int = 8, per_sensor: int = 6, sensors: Sequence[int] = (0, 1, 2, 3, 4),
                         image_size: int = 224, seed: int = 0):
    """The same materials seen through several sensors, rendered by the built-in synthetic data's renderer.

    Returns (touch (N, 3, S, S) ImageNet-normalised, sensor ids (N,), material names (N,)), N =
    num_materials · per_sensor · len(sensors).
    """
    if not 1 <= num_materials <= len(TAG_MATERIALS):
        raise ValueError(f"num_materials must be in 1..{len(TAG_MATERIALS)}, got {num_materials}")
    unknown = [s for s in sensors if s not in LOOKS]
    if unknown:
        raise ValueError(f"no synthetic look for sensor ids {unknown}; available: {sorted(LOOKS)}")
    rng = np.random.default_rng(seed)
    touch, ids, names = [], [], []
    for m in range(num_materials):
        material = TAG_MATERIALS[m * len(TAG_MATERIALS) // num_materials]
        for s in sensors:
            for _ in range(per_sensor):
                raw = render_touch(random_scene(rng, material), LOOKS[s], 64, rng, [float(rng.uniform(0.6, 1.0))])[0]
                touch.append(preprocess_touch(raw.transpose(1, 2, 0), size=image_size))
                ids.append(s)
                names.append(material.name)
    return torch.stack(touch), np.asarray(ids), np.asarray(names)


def tsne_2d(features: np.ndarray, perplexity: Optional[float] = None, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) t-SNE of the L2-normalised features (perplexity default: min(30, (N - 1) / 3))."""
    from sklearn.manifold import TSNE  # here, not at the top: scikit-learn takes ~1 s to load, only t-SNE needs it

    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 5:
        raise ValueError(f"t-SNE needs an (N, D) array with N >= 5, got shape {x.shape}")
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    perplexity = perplexity or min(30.0, (len(x) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def neighbour_agreement(features: np.ndarray, keys: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's k nearest neighbours (cosine, excluding itself) that share its key."""
    x = np.asarray(features, dtype=np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(x) - 1)
    nn = np.argpartition(-sim, k, axis=1)[:, :k]
    keys = np.asarray(keys)
    return float((keys[nn] == keys[:, None]).mean())


def _scatter(ax, xy, keys, names, title, legend_max=20):
    uniq = list(dict.fromkeys(keys.tolist()))
    cmap = pyplot().get_cmap("tab10" if len(uniq) <= 10 else "tab20")
    for i, key in enumerate(uniq):
        sel = keys == key
        ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=cmap(i % cmap.N), label=names(key), alpha=0.8, linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(uniq) <= legend_max:
        ax.legend(fontsize=7, markerscale=1.5, loc="best", frameon=False)


def plot_tsne(features: np.ndarray, sensors: np.ndarray, labels: np.ndarray, path: Union[str, Path],
              perplexity: Optional[float] = None, seed: int = 0, title: str = "") -> Dict[str, float]:
    """Two-panel t-SNE PNG (left: coloured by sensor, right: by label).

    Returns {"same_sensor": ..., "same_label": ...} k-NN agreements (see :func:`neighbour_agreement`), also shown
    in the panel titles.
    """
    sensors, labels = np.asarray(sensors), np.asarray(labels)
    if not len(features) == len(sensors) == len(labels):
        raise ValueError(f"features, sensors and labels differ in length: {len(features)}, {len(sensors)}, "
                         f"{len(labels)}")
    xy = tsne_2d(features, perplexity, seed)
    stats = {"same_sensor": neighbour_agreement(features, sensors), "same_label": neighbour_agreement(features, labels)}
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 5))
    _scatter(a, xy, sensors, lambda s: SENSOR_NAMES.get(int(s), f"sensor {s}"),
             f"by sensor (10-NN same sensor: {stats['same_sensor']:.2f})")
    _scatter(b, xy, labels, str, f"by label (10-NN same label: {stats['same_label']:.2f})")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    return stats
