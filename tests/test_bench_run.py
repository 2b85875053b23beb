"""``anytouch bench`` end to end: every catalogue task with four encoder families through the CLI; on tiny fake
tasks, three encoder families, the table and plot, resuming per cell, the
feature cache, and cached features giving the same heads as encoding every batch."""
import json
import math

import pytest

import anytouch.bench.runner as runner
from anytouch.bench import command
from anytouch.bench.protocol import ProtocolConfig
from anytouch.bench.tasks import TASKS as TASKS_CATALOGUE, get_task
from anytouch.checkpoint.anytouch2 import export_safetensors
from anytouch.cli.main import main as cli_main
from anytouch2_fixtures import tiny_encoder
from fixtures_bench import TASKS, FakeScorer, anytouch1_checkpoint, build_fake_dataset, sparsh_checkpoint, write_yaml


@pytest.fixture
def fake_catalogue(monkeypatch):
    monkeypatch.setattr(runner, "default_tasks", lambda: ({t.name: t for t in TASKS}, build_fake_dataset))
    monkeypatch.setattr(runner, "default_scorer", FakeScorer)


@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoders")
    return [write_yaml(d / "anytouch1-tiny.yaml", "anytouch1", anytouch1_checkpoint(d / "at1.pt")),
            write_yaml(d / "vit-tiny.yaml", "timm", model="vit_tiny_patch16_224",
                       model_kwargs={"img_size": 32, "depth": 1}),
            write_yaml(d / "sparsh-tiny.yaml", "sparsh", sparsh_checkpoint(d / "sparsh.ckpt"), image_size=[32, 24])]


ARGS = ["--synthetic", "--data", "image_size=[24, 32]", "--budgets", "1.0", "0.1", "--seeds", "0", "1",
        "--epochs", "3", "--lr", "1e-2", "--batch-size", "8", "--device", "cpu"]


def test_bench_command_runs_every_task_and_resumes(tmp_path, encoder_files, fake_catalogue, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["--encoders", *map(str, encoder_files), "--out", str(out), *ARGS]
    assert command.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    names = ["anytouch1-tiny", "vit-tiny", "sparsh-tiny"]
    assert len(res["cells"]) == 3 * 3 * 2 * 2 * 2 and len(res["summary"]) == 3 * 3 * 2 * 2
    assert sorted(res["timing"]) == sorted(names) and all(t["wall_s"] > 0 for t in res["timing"].values())
    table = (out / "results.md").read_text()
    assert table == capsys.readouterr().out.split("anytouch1-tiny:")[0]
    header = next(line for line in table.splitlines() if line.startswith("| task"))
    assert header.split(" | ")[4:] == ["anytouch1-tiny", "vit-tiny", "sparsh-tiny |"]
    rows = [line for line in table.splitlines() if line.startswith("| fake_")]
    assert len(rows) == 3 * 2 * 2 and not any("–" in r for r in rows)
    assert "| fake_force | rmse ↓ | linear | 0.1 |" in table
    assert (out / "results.png").stat().st_size > 0
    sparsh = next(c for c in res["cells"] if c["encoder"] == "sparsh-tiny")
    assert sparsh["contract"]["channels"] == "stacked" and sparsh["contract"]["stride"] == 5

    # a rerun builds nothing; deleting one cell rebuilds only its encoder and reruns only that cell
    built = []
    real_build = runner.build_encoder
    monkeypatch.setattr(runner, "build_encoder",
                        lambda spec, *a, **k: built.append(spec.name) or real_build(spec, *a, **k))
    assert command.main(argv) == 0 and built == []
    assert json.loads((out / "results.json").read_text())["summary"] == res["summary"]
    victim = out / "cells" / runner.cell_name("vit-tiny", "fake_slip", "attentive", 0.1, 1)
    before = victim.read_text()
    victim.unlink()
    assert command.main(argv) == 0 and built == ["vit-tiny"]
    assert json.loads(victim.read_text())["test"] == json.loads(before)["test"]  # features came from the cache
    assert json.loads((out / "timing.json").read_text())["vit-tiny"]["cells_run"] == 1


def test_cached_features_give_the_live_result(tmp_path, encoder_files, monkeypatch):
    encoded = []
    real = runner.encode_dataset
    monkeypatch.setattr(runner, "encode_dataset", lambda *a, **k: encoded.append(1) or real(*a, **k))
    base = dict(encoders=[str(encoder_files[2])], tasks=["fake_texture", "fake_force"], synthetic=True,
                budgets=(1.0, 0.1), seeds=(0,), heads=("linear", "attentive"),
                protocol=ProtocolConfig(epochs=3, lr=1e-2, batch_size=8), cache_dir=str(tmp_path / "cache"))
    cached = runner.run_benchmark(runner.BenchConfig(out=str(tmp_path / "a"), **base), TASKS, build_fake_dataset,
                                  FakeScorer())
    assert len(encoded) == 2 * 3  # each split of each task encoded once
    again = runner.run_benchmark(runner.BenchConfig(out=str(tmp_path / "b"), **base), TASKS, build_fake_dataset,
                                 FakeScorer())
    assert len(encoded) == 6 and again["summary"] == cached["summary"]  # a new run reads the cache
    live = runner.run_benchmark(runner.BenchConfig(out=str(tmp_path / "c"), cache=False, **base), TASKS,
                                build_fake_dataset, FakeScorer())
    assert len(encoded) == 6
    key = lambda c: (c["task"], c["head"], c["budget"], c["seed"])  # noqa: E731
    live_cells = {key(c): c for c in live["cells"]}
    for c in cached["cells"]:
        other = live_cells[key(c)]
        assert c["selected_epoch"] == other["selected_epoch"]
        for m, v in c["test"].items():
            assert other["test"][m] == pytest.approx(v, rel=1e-4, abs=1e-5)


def test_unknown_task_is_an_error(tmp_path, encoder_files):
    cfg = runner.BenchConfig(encoders=[str(encoder_files[1])], tasks=["fake_textur"], out=str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['fake_textur'\]"):
        runner.run_benchmark(cfg, TASKS, build_fake_dataset, FakeScorer())


def test_anytouch_bench_runs_every_catalogue_task_on_synthetic_data(tmp_path, encoder_files, capsys):
    """The issue's "done when", through the ``anytouch`` CLI: every task of the catalogue on its synthetic twin,
    four encoder families (AnyTouch 1 tiny, a timm ViT, Sparsh-layout, AnyTouch 2 tiny), two seeds, the table."""
    at2 = write_yaml(tmp_path / "anytouch2-tiny.yaml", "anytouch2",
                     export_safetensors(tiny_encoder(4), tmp_path / "at2.safetensors"))
    out, seeds, heads = tmp_path / "all", (0, 1), ("linear", "attentive")
    argv = ["bench", "--encoders", *map(str, encoder_files), str(at2), "--out", str(out), "--synthetic", "--data",
            "num_samples=8", "image_size=32", "--budgets", "1.0", "--seeds", "0", "1", "--epochs", "2",
            "--device", "cpu"]
    assert cli_main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    names, tasks = ["anytouch1-tiny", "vit-tiny", "sparsh-tiny", "anytouch2-tiny"], [t.name for t in TASKS_CATALOGUE]
    cells = {(c["encoder"], c["task"], c["head"], c["seed"]): c for c in res["cells"]}
    assert set(cells) == {(e, t, h, s) for e in names for t in tasks for h in heads for s in seeds}
    for (enc, task, head, seed), c in cells.items():
        assert set(c["test"]) == set(get_task(task).metrics), (enc, task)
        assert all(math.isfinite(v) for v in [*c["test"].values(), *c["val"].values()]), (enc, task, head, c["test"])
        assert 0 <= c["selected_epoch"] < 2 and c["val_curve"][c["selected_epoch"]] == c["val"][c["primary"]]
    for enc in names:  # Feel: the A and B features side by side, so its linear head sees twice the pooled width
        one, feel = cells[(enc, "of1", "linear", 0)], cells[(enc, "feel", "linear", 0)]
        pooled = (one["head_params"] - 7) // 7  # Linear(P, 7)
        assert feel["head_params"] == 2 * pooled + 1
    assert len(res["summary"]) == len(names) * len(tasks) * len(heads)
    table = (out / "results.md").read_text()
    for row in res["summary"]:
        vals = [cells[(row["encoder"], row["task"], row["head"], s)]["test"][row["metric"]] for s in seeds]
        assert row["seeds"] == list(seeds) and row["mean"] == pytest.approx(sum(vals) / 2)
        assert row["std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))  # sample std over the seeds
    for task in tasks:
        for head in heads:
            rows = {r["encoder"]: r for r in res["summary"] if (r["task"], r["head"]) == (task, head)}
            first = rows[names[0]]
            line = (f"| {task} | {first['metric']} {'↑' if first['higher_is_better'] else '↓'} | {head} | 1 | "
                    + " | ".join(f"{rows[e]['mean']:.4g} ± {rows[e]['std']:.2g}" for e in names) + " |")
            assert line in table.splitlines()
    assert "seeds [0, 1]" in table and (out / "results.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert all(res["timing"][e]["wall_s"] > 0 and f"{e}: " in printed for e in names)
