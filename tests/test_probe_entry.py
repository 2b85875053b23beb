"""Probe configs against docs/original/probes.md#protocol, the four run_probe_*.sh entry points on synthetic data,
zero-shot classification and cross-sensor retrieval."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from anytouch.config import load_config
from anytouch.data.device_aug import IDENTITY
from anytouch.probe.config import ProbeConfig
from anytouch.probe.retrieval import cross_sensor_retrieval, recall_at_k
from anytouch.probe.retrieval import main as retrieval_main
from anytouch.probe.zeroshot import DEFAULT_TEMPLATE, TAG_MATERIAL_NAMES, read_class_names, zero_shot
from anytouch.probe.zeroshot import main as zeroshot_main

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# docs/original/probes.md#protocol: tasks, pooling, sensor, lr, weight decay, effective batch (per-GPU batch x 2 GPUs)
PAPER_PROBES = {
    "tag": (["tag_material", "tag_roughness", "tag_hardness"], "cls", 0, 2e-4, 0.05, 128),
    "feel": (["feel"], "cls", 0, 1e-3, 0.05, 256),
    "of1": (["of1"], "global", -1, 1e-3, 0.01, 128),
    "of2": (["of2"], "cls", -1, 1e-3, 0.01, 256),
}


@pytest.mark.parametrize("name", sorted(PAPER_PROBES))
def test_probe_configs_match_the_paper_protocol(name):
    cfg = load_config(ProbeConfig, [ROOT / "configs" / f"probe_{name}.yaml"])
    tasks, pooling, sensor, lr, wd, batch = PAPER_PROBES[name]
    p, o = cfg.probe, cfg.optim
    assert (p.tasks, p.pooling, p.sensor, o.lr, o.weight_decay, p.batch_size) == (tasks, pooling, sensor, lr, wd, batch)
    assert (p.epochs, tuple(o.betas), o.warmup_epochs, o.min_lr, o.clip_grad) == (50, (0.9, 0.99), 0, 0, None)
    assert p.protocol == "official"


SCRIPTS = [("TAG", "cached", 3), ("Feel", "cached", 1), ("OF1", "cached", 1), ("OF2", "both", 1)]


@pytest.mark.parametrize("script,protocol,tasks", SCRIPTS)
def test_run_probe_scripts_on_synthetic_data(tmp_path, script, protocol, tasks):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "NGPU": "1"}
    cmd = ["bash", str(ROOT / f"run_probe_{script}.sh"), "data=synthetic", "probe.checkpoint=random:tiny",
           f"probe.protocol={protocol}", "probe.epochs=2", "probe.batch_size=8", "probe.val_fraction=0.25",
           "data.synthetic.probe_samples=16", "data.num_workers=0", f"run.output_dir={out}",
           f"probe.cache_dir={tmp_path / 'cache'}", "probe.grid.lr=[1e-2]", "probe.grid.weight_decay=[0.0]"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| task | protocol | selection rule |" in res.stdout
    rows = json.loads((out / "results.json").read_text())["rows"]
    protocols = ["official", "cached"] if protocol == "both" else [protocol]
    assert len(rows) == tasks * len(protocols) * 3
    assert {r["rule"] for r in rows} == {"paper", "last", "val"}
    assert all(0 <= r["accuracy"] <= 100 and r["checkpoint"] == "random:tiny" for r in rows)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    task = rows[0]["task"]
    for p in protocols:
        events = EventAccumulator(str(out / task / p))
        events.Reload()
        assert set(events.Tags()["scalars"]) == {"train_loss", "lr", "perf/test_acc1", "perf/test_loss"}
        assert len(events.Scalars("perf/test_acc1")) == 2  # one per epoch
    assert (out / "config.yaml").is_file() and (out / "results.md").is_file()


# -- zero-shot -----------------------------------------------------------------------------------------------------

class _Oracle(nn.Module):
    """Stand-in stage-2 model: text feature = one-hot of the class named in the prompt, touch feature = touch[:, 0, 0]
    (the test puts class scores there)."""

    def __init__(self, names):
        super().__init__()
        self.names, self.prompts = list(names), []
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode_text(self, prompts):
        self.prompts += prompts
        idx = [next(i for i, n in enumerate(self.names) if f" {n} " in p) for p in prompts]
        return F.one_hot(torch.tensor(idx), len(self.names)).float() * 3.0

    def encode_touch(self, touch, sensor, pooling):
        return touch[:, 0, 0]  # the normalised scores: same order


def test_zero_shot_accuracy_prompts_and_names_file(tmp_path):
    names = ["stone", "wood", "cloth", "metal", "glass", "paper", "sand"]
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(14):
        label = i % 7
        score = torch.rand(7, generator=g) * 0.1
        if i < 10:  # samples 10..13 prefer class label+1 (top-1 wrong, top-5 right)
            score[label] = 1.0
        else:
            score[(label + 1) % 7], score[label] = 1.0, 0.9
        frame = (score * 255).round().to(torch.uint8).view(1, 1, 7).expand(3, 1, 7)  # as loaders ship frames
        data.append({"touch": frame, "touch_aug": IDENTITY, "label": label})
    model = _Oracle(names)
    out = zero_shot(model, data, names, batch_size=4)
    assert out["n"] == 14 and out["acc1"] == pytest.approx(100 * 10 / 14) and out["acc5"] == pytest.approx(100.0)
    assert model.prompts == [DEFAULT_TEMPLATE.format(material=n) for n in names]
    assert out["per_class"]["sand"] == [1, 2]  # sample 6 right, sample 13 wrong

    (tmp_path / "plain.txt").write_text("\n".join(names) + "\n")
    assert read_class_names(tmp_path / "plain.txt") == names
    (tmp_path / "ref.txt").write_text("Wood: 1\nStone: 0\nSynthetic Fabric: 2\n")
    assert read_class_names(tmp_path / "ref.txt") == ["Stone", "Wood", "Synthetic Fabric"]
    (tmp_path / "gap.txt").write_text("a: 0\nb: 2\n")
    with pytest.raises(ValueError, match=r"no name for class id\(s\) \[1\]"):
        read_class_names(tmp_path / "gap.txt")
    assert len(TAG_MATERIAL_NAMES) == 20 and len(set(TAG_MATERIAL_NAMES)) == 20


def test_zero_shot_entry_point_on_synthetic_data(tmp_path):
    out = zeroshot_main(["checkpoint=random:tiny", "data.source=synthetic", "data.synthetic.probe_samples=12",
                         "data.num_workers=0", "run.device=cpu", f"run.output_dir={tmp_path}"])
    saved = json.loads((tmp_path / "zeroshot.json").read_text())
    assert saved["n"] == out["n"] == 12 and saved["names"] == list(TAG_MATERIAL_NAMES)
    assert sum(h for h, _ in saved["per_class"].values()) == round(saved["acc1"] * 12 / 100)


# -- retrieval -----------------------------------------------------------------------------------------------------

def test_recall_at_k_on_crafted_features():
    gallery = F.normalize(torch.eye(4), dim=-1)
    keys = np.array([10, 11, 12, 13])
    query = F.normalize(torch.tensor([[1.0, 0.5, 0, 0], [0.9, 1.0, 0, 0], [0, 0, 0.2, 1.0]]), dim=-1)
    qkeys = np.array([10, 10, 12])
    # query 0 -> 10 first (hit@1); query 1 -> 11 then 10 (hit@2); query 2 -> 13, 12 (hit@2)
    assert recall_at_k(query, gallery, qkeys, keys, ks=(1, 2)) == {1: pytest.approx(100 / 3), 2: pytest.approx(100.0)}


def test_cross_sensor_retrieval_matches_contacts():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(5, 16, generator=g), dim=-1)  # one direction per contact
    feats, sensors, contacts = [], [], []
    for s in (1, 3, 4):
        for c in range(5):
            if s == 4 and c == 4:
                continue  # contact 4 never seen by DuraGel
            for _ in range(3):
                feats.append(centres[c] + 0.05 * torch.randn(16, generator=g))
                sensors.append(s)
                contacts.append(c)
    feats = F.normalize(torch.stack(feats), dim=-1)
    sensors, contacts = np.array(sensors), np.array(contacts)
    for level in ("contact", "frame"):
        rows = cross_sensor_retrieval(feats, sensors, contacts, ks=(1, 5), level=level)
        assert len(rows) == 6 and all(r["R@1"] == 100.0 for r in rows)
    pair = {(r["query"], r["gallery"]): r for r in cross_sensor_retrieval(feats, sensors, contacts)}
    assert pair[("digit", "duragel")]["queries"] == 4 and pair[("duragel", "digit")]["gallery_size"] == 5
    # shuffle which contact each DuraGel frame belongs to: retrieval involving it drops
    shuffled = contacts.copy()
    shuffled[sensors == 4] = (shuffled[sensors == 4] + 1) % 4
    rows = {(r["query"], r["gallery"]): r for r in cross_sensor_retrieval(feats, sensors, shuffled)}
    assert rows[("digit", "duragel")]["R@1"] < 50 and rows[("digit", "gelsight_mini")]["R@1"] == 100.0


def test_retrieval_entry_point_on_synthetic_tacquad(tmp_path):
    rows = retrieval_main(["checkpoint=random:tiny", "data.source=synthetic", "data.synthetic.num_samples=24",
                           "data.num_workers=0", "run.device=cpu", f"run.output_dir={tmp_path}"])
    assert {(r["query"], r["gallery"]) for r in rows} == {
        (a, b) for a in ("digit", "gelsight_mini", "duragel") for b in ("digit", "gelsight_mini", "duragel") if a != b}
    assert json.loads((tmp_path / "retrieval.json").read_text())["rows"] == rows
