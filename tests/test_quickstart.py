"""The quick start (scaled settings, the results table, the whole run at a tenth of its size) and the embedding
example that the README shows."""
import json
import os
from dataclasses import asdict
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anytouch.data import build_dataset
from anytouch.data.synthetic import SyntheticConfig
from anytouch.models import AnyTouchModel, get_arch
from anytouch.quickstart import SETTINGS, held_out_matching, results_table, run_quickstart
from anytouch.quickstart_report import (README_MARKERS, block_files, current_block, readme_block, replace_block,
                                        report_text)

REPO = Path(__file__).resolve().parent.parent


def test_scaled_settings_keep_every_stage_runnable():
    base = SETTINGS["tiny"]
    small = base.scaled(0.01)
    assert small.stage1_epochs == small.stage2_epochs == 1 and small.pretrain_samples == 4
    assert small.probe_samples >= small.probe_batch  # a probe needs one full batch
    assert base.scaled(2.0).stage1_epochs == 2 * base.stage1_epochs
    assert base.scaled(1.0) == base
    with pytest.raises(ValueError, match="scale must be > 0"):
        base.scaled(0)


def test_results_table():
    acc = {"random init": {"tag_material": 10.0, "feel": 55.55}, "stage 2": {"tag_material": 20.25}}
    lines = results_table(acc).splitlines()
    assert lines[0] == "| task | random init | stage 2 |"
    assert "| tag_material | 10.0 | 20.2 |" in lines and "| feel | 55.5 | - |" in lines  # 55.55 -> 55.5 (float repr)
    assert [ln.split(" | ")[0][2:] for ln in lines[2:]] == ["tag_material", "tag_roughness", "tag_hardness", "feel",
                                                             "of1", "of2"]


def test_embedding_example_runs_without_a_checkpoint():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYTOUCH_")}
    res = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart_embed.py")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "random tiny encoder" in res.stdout
    sim = float(res.stdout.split("DIGIT clip): ")[1].split()[0])
    assert -1.0 <= sim <= 1.0


def test_policy_example_runs_and_keeps_the_encoder_frozen():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYTOUCH_")}
    res = subprocess.run([sys.executable, str(REPO / "examples" / "policy_features.py")], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "step 2: loss" in res.stdout and "encoder untouched" in res.stdout


def test_quickstart_end_to_end(tmp_path, capsys):
    """The whole pipeline at a tenth of the quick start's sizes (about 30 s on 2 cores)."""
    summary = run_quickstart(out=str(tmp_path / "qs"), scale=0.1, device="cpu")
    out = Path(summary["output"])
    for f in ("stage1/checkpoint-last.pth", "stage2/checkpoint-last.pth", "stage1/log.jsonl", "results.md",
              "summary.json", "pictures/mae_grid.png", "pictures/tsne_stage1.png", "pictures/tsne_stage2.png",
              "pictures/curves_stage1.png", "pictures/curves_stage2.png"):
        assert (out / f).is_file(), f
    acc = json.loads((out / "summary.json").read_text())["accuracy"]
    assert set(acc) == {"random init", "stage 1", "stage 2"}
    assert all(len(v) == 6 and all(0 <= a <= 100 for a in v.values()) for v in acc.values())
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["matching"]) == {"image", "video"}
    assert all(0 <= m[k] <= 1 for m in summary["matching"].values() for k in ("accuracy", "auc", "cosine_auc"))
    assert summary["platform"]["torch_threads"] >= 1 and summary["platform"]["cpu"]
    assert (out / "results.md").read_text() == readme_block(summary)  # what the README block is made from
    printed = capsys.readouterr().out
    assert f"outputs: {out}" in printed and report_text(summary) in printed


def test_readme_block_is_a_full_runs_output():
    """The README's result block is exactly what the default quick start wrote (scripts/update_readme_quickstart.py
    copies the run's summary next to it): no hand-edited numbers, no format drift."""
    readme, summary_file = block_files(REPO)
    summary = json.loads(summary_file.read_text())
    assert summary["settings"] == asdict(SETTINGS["tiny"])  # a full run, not a scaled one
    assert current_block(readme.read_text()) == readme_block(summary)


def test_replace_block():
    text = f"intro\n{README_MARKERS[0]}\nold\n{README_MARKERS[1]}\nrest\n"
    new = replace_block(text, "new\nlines\n")
    assert new == f"intro\n{README_MARKERS[0]}\nnew\nlines\n{README_MARKERS[1]}\nrest\n"
    assert current_block(new) == "new\nlines\n"
    with pytest.raises(ValueError, match="found 0"):
        replace_block("no markers", "x")
    with pytest.raises(ValueError, match="found 2"):
        replace_block(text + text, "x")


def test_held_out_matching_scores_only_negatives_through_another_sensor():
    torch.manual_seed(0)
    model = AnyTouchModel(get_arch("tiny"))
    with torch.no_grad():  # a head that scores a pair by its cosine similarity ranks the pairs as the cosine does
        model.cross_head.weight.fill_(1.0)
    res = held_out_matching(model, pairs=6, seed=3, batch=5)
    for kind in ("image", "video"):
        data = build_dataset("tacquad", synthetic=SyntheticConfig(seed=3, cross_samples=6), clip=f"cross_{kind}",
                             stage=2, train=False, image_size=56, cross_seed=3)
        kept = sum(data[i]["negative_sensor"] != data[i]["anchor_sensor"] for i in range(len(data)))
        assert 0 < kept < len(data) and res[kind]["pairs"] == 2 * kept
        assert all(0 <= res[kind][k] <= 1 for k in ("accuracy", "auc", "cosine_auc"))
    assert all(abs(r["auc"] - r["cosine_auc"]) < 1e-6 for r in res.values())
