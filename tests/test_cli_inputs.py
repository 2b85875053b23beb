"""The command line's package layout, and what a new user trips on: GIF inputs, skipped files, names files, output
checks before work, untrained sensor slots, bf16 on CPU, config files from any folder, progress bars off a terminal,
batch-size checks and a closed pipe."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.checkpoint import load_checkpoint, save_checkpoint
from anytouch.cli import main
from anytouch.config import ConfigError, PACKAGED_CONFIGS, load_config, resolve_config_file
from anytouch.models import TouchMAE, get_arch
from anytouch.probe.config import ProbeConfig
from anytouch.probe.zeroshot import ZeroShotConfig
from anytouch.progress import StageLine, progress

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "anytouch"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_inputs")
    torch.manual_seed(0)
    save_checkpoint(root / "s1.pth", TouchMAE(get_arch("tiny")))
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    for name in ("a.png", "b.gif"):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "imgs" / name)
    (root / "imgs" / "frames.zip").write_bytes(b"PK")
    (root / "imgs" / "notes.txt").write_text("x")
    return root


def _embed(ckpt, out, *extra):
    return main(["embed", str(ckpt / "imgs"), "-c", str(ckpt / "s1.pth"), "-o", str(out), *extra])


def test_gif_is_embedded_and_skipped_files_are_reported(ckpt, tmp_path, capsys):
    assert main(["embed", str(ckpt / "imgs" / "b.gif"), "-c", str(ckpt / "s1.pth"), "-o", str(tmp_path / "g.npy")]) == 0
    assert np.load(tmp_path / "g.npy").shape == (1, get_arch("tiny").projection_dim)
    capsys.readouterr()
    assert _embed(ckpt, tmp_path / "f.npy") == 0
    assert (tmp_path / "f.names.txt").read_text().splitlines() == [str(ckpt / "imgs" / n) for n in ("a.png", "b.gif")]
    err = capsys.readouterr().err
    assert "skipped 2 file(s)" in err and "frames.zip" in err and "notes.txt" in err


def test_names_file_is_named_after_the_output(ckpt, tmp_path):
    assert _embed(ckpt, tmp_path / "feats.npy") == 0
    assert _embed(ckpt, tmp_path / "feats.safetensors", "--normalize") == 0
    assert _embed(ckpt, tmp_path / "other.npy") == 0
    assert sorted(p.name for p in tmp_path.glob("*.names.txt")) == [
        "feats.names.txt", "feats.safetensors.names.txt", "other.names.txt"]


def test_output_folder_is_refused_before_any_work(ckpt, tmp_path, capsys):
    (tmp_path / "feats.npy").mkdir()
    # the checkpoint does not exist: the output is checked first
    assert main(["embed", str(ckpt / "imgs"), "-c", str(tmp_path / "none.pth"), "-o", str(tmp_path / "feats.npy")]) == 2
    assert "is an existing folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert _embed(ckpt, tmp_path / "file" / "feats.npy") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_untrained_sensor_slot_is_refused_until_adapted(ckpt, tmp_path, capsys):
    assert _embed(ckpt, tmp_path / "f.npy", "--sensor", "5") == 2
    err = capsys.readouterr().err
    assert "slot 5" in err and "never trained" in err and "anytouch adapt" in err and "--sensor universal" in err
    assert _embed(ckpt, tmp_path / "f.npy", "--sensor", "digit") == 0  # a paper sensor needs no record
    adapted = tmp_path / "adapted.pth"
    assert main(["adapt", str(ckpt / "imgs"), "-c", str(ckpt / "s1.pth"), "-o", str(adapted), "--steps", "1"]) == 0
    assert load_checkpoint(adapted)["config"]["adapt"]["slots"] == [5]
    assert main(["embed", str(ckpt / "imgs"), "-c", str(adapted), "-o", str(tmp_path / "f.npy"), "-s", "5"]) == 0
    # a second adaptation takes the next slot and keeps the record of the first, also through convert
    twice = tmp_path / "twice.pth"
    assert main(["adapt", str(ckpt / "imgs"), "-c", str(adapted), "-o", str(twice), "--steps", "1"]) == 0
    assert load_checkpoint(twice)["config"]["adapt"]["slots"] == [5, 6]
    assert main(["convert", str(twice), str(tmp_path / "conv.pth")]) == 0
    assert load_checkpoint(tmp_path / "conv.pth")["config"]["adapt"]["slots"] == [5, 6]
    assert main(["embed", str(ckpt / "imgs"), "-c", str(twice), "-o", str(tmp_path / "f.npy"), "-s", "7"]) == 2


def test_bf16_on_cpu_runs_bf16_and_says_so(ckpt, tmp_path):
    from safetensors import safe_open

    feats = {}
    for flag in ("", "--bf16"):
        out = tmp_path / f"f{flag}.safetensors"
        assert _embed(ckpt, out, "--device", "cpu", *([flag] if flag else [])) == 0
        with safe_open(str(out), "np") as f:
            feats[flag], meta = f.get_tensor("features"), f.metadata()
        assert meta["precision"] == ("bf16 autocast on cpu" if flag else "fp32")
    diff = np.abs(feats[""] - feats["--bf16"]).max()
    assert 0 < diff < 0.1  # bf16 rounding, not fp32 and not garbage


def test_config_files_resolve_from_any_folder_and_are_packaged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANYTOUCH_CONFIG_DIR", raising=False)
    cfg = load_config(ProbeConfig, ["configs/probe_tag.yaml"])
    assert cfg.probe.tasks == load_config(ProbeConfig, [ROOT / "configs" / "probe_tag.yaml"]).probe.tasks
    assert resolve_config_file("probe_tag").resolve() == (ROOT / "configs" / "probe_tag.yaml").resolve()
    with pytest.raises(ConfigError, match="config file not found: configs/nope.yaml"):
        resolve_config_file("configs/nope.yaml")
    # the package carries the configs (anytouch/configs, declared as package data so that a wheel ships them)
    assert sorted(p.relative_to(PACKAGED_CONFIGS) for p in PACKAGED_CONFIGS.rglob("*.yaml")) == \
        sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'anytouch = ["configs/*.yaml", "configs/*/*.yaml"]' in pyproject


def test_progress_off_a_terminal_is_one_line_per_stage(capsys):
    assert isinstance(progress(range(3)), StageLine)  # pytest's captured stderr is not a terminal
    assert list(progress(range(5), desc="verify tag", unit="file")) == list(range(5))
    bar = progress(total=4, desc="epoch 1")
    bar.set_postfix({"loss": 0.5}, refresh=False)
    for _ in range(4):
        bar.update(1)
    bar.close()
    for _ in progress(range(3), desc="transient", leave=False):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err and "transient" not in err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("verify tag: 5/5 file in ") and lines[1].endswith("loss=0.5")


def test_every_progress_bar_goes_through_the_helper():
    direct = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
              if p.name != "progress.py" and any(
                  isinstance(n, (ast.Import, ast.ImportFrom)) and "tqdm" in (getattr(n, "module", None) or "") +
                  " ".join(a.name for a in n.names) for n in ast.walk(ast.parse(p.read_text())))]
    assert direct == []


@pytest.mark.parametrize("schema, override", [
    (ProbeConfig, "probe.batch_size=0"), (ProbeConfig, "probe.eval_batch_size=-1"), (ZeroShotConfig, "batch_size=0"),
])
def test_every_batch_size_is_checked(schema, override):
    with pytest.raises(ConfigError, match="a batch size must be a positive integer"):
        load_config(schema, [], [override])


def test_zero_shot_and_retrieval_use_the_run_section():
    cfg = load_config(ZeroShotConfig, [], ["run.device=cpu", "run.output_dir=x", "run.seed=3"])
    assert (cfg.run.device, cfg.run.output_dir, cfg.run.seed) == ("cpu", "x", 3)
    with pytest.raises(ConfigError, match="unknown config key 'device'"):
        load_config(ZeroShotConfig, [], ["device=cpu"])


def test_closed_pipe_exits_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "anytouch", "train", "stage2", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # the reader is gone before anything is written (anytouch ... --help | head)
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_cli_modules_depend_one_way():
    """args <- command modules <- main; the drawing code in viz/ knows nothing of the command line."""
    def imports(path):
        out = set()
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.level == 1:
                out |= {n.module} if n.module else {a.name for a in n.names}
        return out

    cli = PKG / "cli"
    commands = {p.stem for p in cli.glob("*.py")} - {"__init__", "args", "main"}
    assert imports(cli / "args.py") == set()
    for name in commands:
        assert imports(cli / f"{name}.py") <= {"args"}, name
        assert "def add_parser(sub)" in (cli / f"{name}.py").read_text()
    assert commands <= imports(cli / "main.py")
    for p in (PKG / "viz").glob("*.py"):
        used = set()
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Import):
                used |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                used |= {f"{n.module}.{a.name}" if n.module else a.name for a in n.names}
        assert not [m for m in used if "argparse" in m or "cli" in m.split(".")], (p, used)
