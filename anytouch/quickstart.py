"""``anytouch quickstart``: the whole AnyTouch pipeline (Feng et al., ICLR 2025) on the built-in synthetic data.

Stage 1 (MAE on images and clips) -> stage 2 (touch-vision-text alignment, continued MAE, cross-sensor matching) ->
the four linear probes of the paper (TAG material / roughness / hardness, Feel, ObjectFolder 1.0 / 2.0; cached
protocol) for a randomly initialised encoder, the stage-1 and the stage-2 checkpoint -> pictures (MAE grid, t-SNE
by sensor and label, training curves). Each stage runs in this process through its ordinary entry point
(``anytouch.train.stage1.main`` ...) with the paper's config files (``configs/*.yaml``) scaled down by overrides, so
every output folder looks exactly like a full run's. The recipe stays the paper's except where noted in
:data:`SETTINGS` (shorter schedules, fewer samples, a higher LR for the tiny network trained from scratch).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from .checkpoint import load_model
from .config import config_dirs
from .data import build_dataset
from .data.device_aug import stack_touch, touch_on_device
from .data.synthetic import SyntheticConfig
from .losses import matching_logits
from .probe import runner
from .quickstart_report import PROBES, platform_info, readme_block, report_text, results_table
from .train import stage1, stage2
from .viz import collect_embeddings, mae_grid, plot_curves, plot_tsne, read_log, synthetic_sensor_set

__all__ = ["QuickstartSettings", "SETTINGS", "run_quickstart", "results_table", "held_out_matching"]


@dataclass(frozen=True)
class QuickstartSettings:
    """What the quick start changes in the paper's recipe (everything else comes from ``configs/*.yaml``)."""

    preset: str = "tiny"
    pretrain_samples: int = 48  # synthetic samples per pre-training source (x 9 sources)
    cross_samples: int = 64  # synthetic TacQuad anchors of the stage-2 cross-sensor sets
    stage1_epochs: int = 12
    stage2_epochs: int = 20
    batch: int = 32  # per loader (the paper: 64 alignment / 32 cross per GPU)
    lr: float = 1e-3  # the paper: 2e-4 for CLIP-initialised ViT-L; a tiny network from scratch needs more
    probe_samples: int = 320  # synthetic samples per probe split (train / test)
    probe_epochs: int = 200  # the paper: 50 epochs of a much larger set; a 320-sample split needs more steps
    probe_batch: int = 64  # the paper: 128 (TAG, OF1) / 256 (Feel, OF2), more than a small synthetic split holds
    matching_pairs: int = 96  # held-out synthetic TacQuad triplets for the matching evaluation
    tsne_materials: int = 8
    tsne_per_sensor: int = 10

    def scaled(self, scale: float) -> "QuickstartSettings":
        """Sizes and epochs times ``scale`` (tests run a fraction), with floors that keep every stage meaningful."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")

        def s(v, lo):
            return max(lo, int(math.ceil(v * scale)))

        return replace(self, pretrain_samples=s(self.pretrain_samples, 4), cross_samples=s(self.cross_samples, 8),
                       stage1_epochs=s(self.stage1_epochs, 1), stage2_epochs=s(self.stage2_epochs, 1),
                       batch=s(self.batch, 4), probe_samples=s(self.probe_samples, 24),
                       probe_epochs=s(self.probe_epochs, 2), probe_batch=s(self.probe_batch, 8),
                       matching_pairs=s(self.matching_pairs, 12), tsne_materials=s(self.tsne_materials, 3),
                       tsne_per_sensor=s(self.tsne_per_sensor, 3))


SETTINGS = {"tiny": QuickstartSettings(),
            "small": QuickstartSettings(preset="small", stage1_epochs=8, stage2_epochs=5)}


def _config_file(name: str) -> str:
    """``configs/<name>.yaml`` from the folders :func:`anytouch.config.config_dirs` searches."""
    for d in config_dirs():
        if (d / f"{name}.yaml").is_file():
            return str(d / f"{name}.yaml")
    raise FileNotFoundError(f"configs/{name}.yaml not found in {', '.join(map(str, config_dirs()))} "
                            "(run from the repository, or set ANYTOUCH_CONFIG_DIR)")


def _common(out: Path, device: str) -> List[str]:
    return ["data=synthetic", "data.num_workers=0", f"run.device={device}", f"run.output_dir={out}"]


def _train(s: QuickstartSettings, out: Path, device: str) -> Dict[str, Path]:
    """Stage 1, then stage 2 from its last checkpoint; returns the two checkpoints."""
    def schedule(epochs: int) -> List[str]:
        return [f"train.epochs={epochs}", f"optim.lr={s.lr}", f"optim.warmup_epochs={min(1, epochs - 1)}",
                "train.ckpt_every_steps=0", "train.log_every=5", f"data.synthetic.num_samples={s.pretrain_samples}"]

    stage1.main(["--config", _config_file("stage1"), f"model={s.preset}", *_common(out / "stage1", device),
                 *schedule(s.stage1_epochs), f"train.batch_size={{image: {s.batch}, video: {s.batch}}}"])
    half = max(2, s.batch // 2)  # cross-sensor batches are half the alignment batches, as in the paper
    stage2.main(["--config", _config_file("stage2"), f"model={s.preset}", *_common(out / "stage2", device),
                 *schedule(s.stage2_epochs), f"model.stage1_checkpoint={out / 'stage1' / 'checkpoint-last.pth'}",
                 f"data.synthetic.cross_samples={s.cross_samples}",
                 f"train.batch_size={{image: {s.batch}, image_cross: {half}, video: {s.batch}, video_cross: {half}}}"])
    return {"stage 1": out / "stage1" / "checkpoint-last.pth", "stage 2": out / "stage2" / "checkpoint-last.pth"}


def _probe(s: QuickstartSettings, out: Path, device: str, checkpoints: Dict[str, str]) -> Dict[str, Dict[str, float]]:
    """{encoder name: {task: best-epoch test accuracy (the paper's rule)}}, cached protocol, each probe config's
    pooling, sensor token, lr and weight decay."""
    acc: Dict[str, Dict[str, float]] = {}
    for name, ckpt in checkpoints.items():
        for cfg, _ in PROBES:
            rows = runner.main(["--config", _config_file(cfg), *_common(out / "probes" / name.replace(" ", "_") / cfg,
                                                                         device),
                                f"data.synthetic.probe_samples={s.probe_samples}", f"probe.checkpoint={ckpt}",
                                "probe.protocol=cached", "probe.val_fraction=0", f"probe.epochs={s.probe_epochs}",
                                f"probe.batch_size={s.probe_batch}", f"probe.cache_dir={out / 'probes' / 'cache'}"])
            acc.setdefault(name, {}).update({r["task"]: r["accuracy"] for r in rows if r["rule"] == "paper"})
    return acc


def _pictures(s: QuickstartSettings, out: Path, ckpts: Dict[str, Path],
              matching: Dict[str, Dict[str, float]]) -> Dict[str, object]:
    pics = out / "pictures"
    model = load_model(ckpts["stage 2"])
    size = model.encoder.image_size
    clips = build_dataset("tacquad", synthetic=True, clip="video", stage=1, train=False, image_size=size,
                          num_samples=6, seed=1)
    items = [clips[i] for i in range(len(clips))]
    mae_grid(model, stack_touch(items), [it["sensor"] for it in items],
             pics / "mae_grid.png", title="stage-2 model, synthetic TacQuad clips (75% of patches masked)")
    touch, sensors, labels = synthetic_sensor_set(s.tsne_materials, s.tsne_per_sensor, image_size=size, seed=1)
    frames = [{"touch": t, "sensor": int(i), "label": lb} for t, i, lb in zip(touch, sensors, labels)]
    stats = {}
    for name, ckpt in (("stage 1", ckpts["stage 1"]), ("stage 2", ckpts["stage 2"])):
        enc = load_model(ckpt).encoder
        emb = collect_embeddings(enc, frames)
        stats[name] = plot_tsne(emb["features"], emb["sensors"], emb["labels"],
                                pics / f"tsne_{name.replace(' ', '')}.png",
                                title=f"{name} touch embeddings: same materials through five synthetic sensors")
    loss_keys = ("train_loss_image", "train_loss_video_recon", "train_loss_video_pred", "lr")
    plot_curves({"stage 1": out / "stage1"}, pics / "curves_stage1.png", keys=loss_keys, smooth=0.8)
    keys = _stage2_keys(out / "stage2")
    held_out = {f"train_acc_{kind}_cross": (s.stage2_epochs, m["accuracy"], "held-out pairs, end")
                for kind, m in matching.items() if f"train_acc_{kind}_cross" in keys}
    plot_curves({"stage 2": out / "stage2"}, pics / "curves_stage2.png", keys=keys, smooth=0.8, marks=held_out)
    return {"tsne": stats}


def _auc(pos: "torch.Tensor", neg: "torch.Tensor") -> float:
    """Probability that a matched pair scores above an unmatched one (ties count half): ROC AUC, 0.5 = chance."""
    diff = pos.reshape(-1, 1) - neg.reshape(1, -1)
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def held_out_matching(model, pairs: int, seed: int = 1, batch: int = 32) -> Dict[str, Dict[str, float]]:
    """The cross-sensor matching of ``model`` on triplets it never trained on: synthetic TacQuad rendered with
    another seed (new object shapes, poses and frames; the same 16 materials), without augmentation.

    Returns, per clip kind (``image``, ``video``): ``pairs`` scored, ``accuracy`` of the head at logit 0 (the
    training's rule) over the matched and unmatched pairs, ``auc`` of the head's logits and ``cosine_auc`` of the
    plain cosine similarity of the two touch features (chance 0.5 for all three).
    """
    cfg = SyntheticConfig(seed=seed, cross_samples=pairs)
    out = {}
    model.eval()
    for kind in ("image", "video"):
        data = build_dataset("tacquad", synthetic=cfg, clip=f"cross_{kind}", stage=2, train=False,
                             image_size=model.encoder.image_size, cross_seed=seed)
        # a negative seen through the anchor's own sensor is given away by the sensor alone (a positive never is),
        # so only negatives through another sensor are scored: the pairs then differ by object only
        triplets = [t for t in (data[i] for i in range(len(data))) if t["negative_sensor"] != t["anchor_sensor"]]
        logits, cosines = ([], []), ([], [])
        for start in range(0, len(triplets), batch):
            items = triplets[start:start + batch]
            roles = [(r, it) for r in ("anchor", "positive", "negative") for it in items]
            touch = touch_on_device(torch.stack([it[r] for r, it in roles]),
                                    torch.stack([it[f"{r}_aug"] for r, it in roles]), "cpu")
            sensor = torch.tensor([it[f"{r}_sensor"] for r in ("anchor", "positive", "negative") for it in items])
            with torch.no_grad():
                a, p, n = model.encode_touch(touch, sensor).split(len(items))
                for store, pair in zip(logits, matching_logits(a, p, n, model.cross_head)):
                    store.append(pair)
                for store, other in zip(cosines, (p, n)):
                    store.append(torch.nn.functional.cosine_similarity(a, other, dim=-1))
        pos, neg = (torch.cat(x) for x in logits)
        out[kind] = {"pairs": 2 * len(pos), "accuracy": float(torch.cat([pos > 0, neg <= 0]).float().mean()),
                     "auc": _auc(pos, neg), "cosine_auc": _auc(*(torch.cat(x) for x in cosines))}
    return out


def _stage2_keys(run: Path) -> Sequence[str]:
    # the matching loss as its two unweighted BCE parts and its accuracy: those have a chance level to compare with
    wanted = ("train_loss_image", "train_loss_video", "train_loss_image_cross_pos", "train_loss_image_cross_neg",
              "train_acc_image_cross", "train_acc_video_cross", "train_loss_image_touch_vision",
              "train_loss_image_touch_text", "train_loss_image_mae", "lr")
    logged = read_log(run)
    return [k for k in wanted if k in logged] or list(logged)[:6]


def _report(summary: Dict[str, object], folder: Path) -> str:
    bar = "=" * 78
    pics = ", ".join(sorted(p.name for p in (folder / "pictures").glob("*.png")))
    return (f"\n{bar}\n{report_text(summary)}\n\noutputs: {folder}\n"
            "  stage1/, stage2/   checkpoints, config.yaml, log.jsonl, tensorboard events\n"
            "  probes/            results.md / results.json per encoder and probe\n"
            f"  pictures/          {pics}\n"
            "  results.md         this report for the README (scripts/update_readme_quickstart.py)\n"
            "  summary.json       every number above, the settings, the timings and the platform\n" + bar)


def run_quickstart(out: Optional[str] = None, preset: str = "tiny", scale: float = 1.0,
                   device: str = "auto") -> Dict[str, object]:
    """Run everything, print the results table and the output folder, return a summary dict (also in
    ``<out>/summary.json``; the report as the README shows it in ``<out>/results.md``).

    Args:
        out: output folder (default ``runs/quickstart-<timestamp>``).
        preset: ``tiny`` (default) or ``small`` (see :data:`SETTINGS`).
        scale: multiplies data sizes and epochs (:meth:`QuickstartSettings.scaled`).
        device: ``auto``, ``cpu`` or ``cuda``.
    """
    if preset not in SETTINGS:
        raise ValueError(f"preset {preset!r}; expected one of {', '.join(SETTINGS)}")
    s = SETTINGS[preset].scaled(scale)
    folder = Path(out or f"runs/quickstart-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ckpts = _train(s, folder, device)
    times = {"pretraining_s": time.perf_counter() - t0}
    encoders = {"random init": f"random:{s.preset}", "stage 1": str(ckpts["stage 1"]),
                "stage 2": str(ckpts["stage 2"])}
    acc = _probe(s, folder, device, encoders)
    times["probes_s"] = time.perf_counter() - t0 - times["pretraining_s"]
    matching = held_out_matching(load_model(ckpts["stage 2"]), s.matching_pairs)
    extra = _pictures(s, folder, ckpts, matching)
    times["total_s"] = time.perf_counter() - t0
    summary = {"settings": asdict(s), "accuracy": acc, "matching": matching, **extra, "times": times,
               "platform": platform_info(), "output": str(folder)}
    with open(folder / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    (folder / "results.md").write_text(readme_block(summary))
    print(_report(summary, folder))
    return summary
