"""The ``anytouch`` command: help everywhere and a light parser, embed (images, videos, clip folders) against the
encoder called directly, convert round trips, export checked against PyTorch, adapt, the picture commands, and
errors that name what was wrong."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anytouch.checkpoint import save_checkpoint
from anytouch.cli import main
from anytouch.models import AnyTouchModel, TouchMAE, get_arch
from anytouch.preprocess import preprocess_touch

RNG = np.random.default_rng(0)


def _rgb(h=40, w=50):
    return RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny stage-1 / stage-2 checkpoints, an image folder (png, jpg, a subfolder), a 4-frame clip folder and a
    6-frame video. Returns (root, {name: RGB frames})."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_checkpoint(root / "s1.pth", TouchMAE(get_arch("tiny")))
    save_checkpoint(root / "s2.pth", AnyTouchModel(get_arch("tiny")))
    frames = {}
    (root / "imgs" / "sub").mkdir(parents=True)
    for name in ("imgs/a.png", "imgs/b.png", "imgs/sub/c.png"):
        frames[name] = _rgb()
        cv2.imwrite(str(root / name), frames[name][..., ::-1])
    (root / "clip").mkdir()
    frames["clip"] = [_rgb() for _ in range(4)]
    for i, f in enumerate(frames["clip"]):
        cv2.imwrite(str(root / "clip" / f"frame{i}.png"), f[..., ::-1])  # natural order: frame2 < frame10
    writer = cv2.VideoWriter(str(root / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (50, 40))
    for _ in range(6):
        writer.write(_rgb()[..., ::-1])
    writer.release()
    cap = cv2.VideoCapture(str(root / "v.avi"))
    frames["v.avi"] = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames["v.avi"].append(bgr[..., ::-1].copy())
    assert len(frames["v.avi"]) == 6
    return root, frames


def _encoder(root, name="s1.pth"):
    from anytouch.api import load_encoder

    return load_encoder(root / name)


def test_parser_is_light_and_lists_every_command():
    code = ("import sys, anytouch.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "anytouch", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for cmd in ("train", "prepare", "verify", "eval", "embed", "convert", "export", "adapt", "viz", "quickstart"):
        assert f"\n    {cmd}" in res.stdout


@pytest.mark.parametrize("argv", [
    ["embed"], ["convert"], ["export"], ["adapt"], ["viz"], ["viz", "mae"], ["viz", "tsne"], ["viz", "curves"],
    ["quickstart"], ["prepare"], ["verify"],
])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage:" in out
    assert f"usage: anytouch {argv[0]}" in out  # forwarded commands name themselves, not their module


@pytest.mark.parametrize("argv,key", [
    (["train", "stage1"], "train.mask_ratio="), (["train", "stage2"], "loss.cross_alpha="),
    (["eval"], "probe.protocol="), (["eval", "zeroshot"], "template="), (["eval", "retrieval"], "checkpoint="),
    (["train"], "stage1,stage2"),
])
def test_config_entry_points_list_their_keys(argv, key, capsys):
    assert main(argv + ["--help"]) == 0
    assert key in capsys.readouterr().out


def test_embed_matches_the_encoder(files, tmp_path):
    root, frames = files
    enc = _encoder(root)
    out = tmp_path / "f.npy"
    imgs = [str(root / n) for n in ("imgs/a.png", "imgs/b.png", "imgs/sub/c.png")]
    assert main(["embed", *imgs, str(root / "clip"), str(root / "v.avi"), "-c", str(root / "s1.pth"),
                 "-o", str(out), "--sensor", "digit", "--clip-folders", "--batch-size", "2"]) == 0
    names = (tmp_path / "f.names.txt").read_text().splitlines()
    feats = np.load(out)
    assert names == imgs + [f"{root / 'clip'}#{t}" for t in (0, 1)] + [f"{root / 'v.avi'}#{t}" for t in range(4)]
    with torch.no_grad():
        x = torch.stack([preprocess_touch(frames[n], size=56) for n in ("imgs/a.png", "imgs/b.png", "imgs/sub/c.png")])
        ref_img = enc(x, "digit").numpy()
        ref_clip = enc(preprocess_touch(frames["clip"][1:4], size=56)[None], 1).numpy()
        ref_vid = enc(torch.stack([preprocess_touch(frames["v.avi"][t:t + 3], size=56) for t in range(4)]), 1).numpy()
    np.testing.assert_allclose(feats[:3], ref_img, atol=1e-5)
    np.testing.assert_allclose(feats[4], ref_clip[0], atol=1e-5)  # window [1, 2, 3] of the clip folder
    np.testing.assert_allclose(feats[5:], ref_vid, atol=1e-4)
    # without --clip-folders a folder is searched for images (recursively); --list adds inputs from a file
    (tmp_path / "list.txt").write_text(f"# inputs\n{root / 'imgs' / 'sub'}\n\n")
    assert main(["embed", imgs[0], imgs[1], "--list", str(tmp_path / "list.txt"), "-c", str(root / "s1.pth"),
                 "-o", str(out), "-s", "digit"]) == 0
    assert (tmp_path / "f.names.txt").read_text().splitlines() == imgs
    np.testing.assert_allclose(np.load(out), ref_img, atol=1e-5)

    # one row per video (mean of its windows), stride 2, safetensors output with names in the header
    st = tmp_path / "m.safetensors"
    assert main(["embed", str(root / "v.avi"), "-c", str(root / "s1.pth"), "-o", str(st), "--sensor", "1",
                 "--video-mode", "mean", "--stride", "2", "--normalize"]) == 0
    from safetensors import safe_open

    with safe_open(str(st), "np") as f:
        got, meta = f.get_tensor("features"), f.metadata()
    mean = ref_vid[[0, 2]].mean(0)
    np.testing.assert_allclose(got[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert meta["sensor"] == "1" and str(root / "v.avi") in meta["names"]


def test_embed_errors(files, tmp_path, capsys):
    root, _ = files
    ck = str(root / "s1.pth")
    assert main(["embed", str(tmp_path / "missing.png"), "-c", ck, "-o", str(tmp_path / "f.npy")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["embed", str(root / "imgs"), "-c", ck, "-o", str(tmp_path / "f.csv")]) == 2
    assert "expected .npy or .safetensors" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert main(["embed", str(tmp_path / "notes.txt"), "-c", ck, "-o", str(tmp_path / "f.npy")]) == 2
    assert "unsupported file type '.txt'" in capsys.readouterr().err
    short = tmp_path / "short"
    short.mkdir()
    cv2.imwrite(str(short / "0.png"), _rgb())
    assert main(["embed", str(short), "--clip-folders", "-c", ck, "-o", str(tmp_path / "f.npy")]) == 2
    assert "1 frame(s); a clip needs at least 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["embed", str(root / "imgs"), "-c", ck, "-o", str(tmp_path / "f.npy"), "--sensor", "gelsite"])
    assert "unknown sensor 'gelsite'" in capsys.readouterr().err
    assert main(["embed", str(root / "imgs"), "-c", str(tmp_path / "none.pth"), "-o", str(tmp_path / "f.npy")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_convert_round_trips(files, tmp_path):
    root, frames = files
    x = preprocess_touch(frames["imgs/a.png"], size=56)[None]
    with torch.no_grad():
        ref = _encoder(root, "s2.pth")(x, "digit")
    steps = [("s2.pth", "w.safetensors", []), ("w.safetensors", "orig.pth", ["--to", "original"]),
             ("orig.pth", "back.pth", ["--config", "tiny"])]
    for src, dst, extra in steps:
        src_path = root / src if src.startswith("s2") else tmp_path / src
        assert main(["convert", str(src_path), str(tmp_path / dst), *extra]) == 0
    from anytouch.api import load_encoder, read_checkpoint

    assert read_checkpoint(tmp_path / "orig.pth")[0] == "original_stage2"
    assert read_checkpoint(tmp_path / "back.pth")[0] == "ours"
    for name in ("w.safetensors", "back.pth"):
        with torch.no_grad():
            assert torch.equal(load_encoder(tmp_path / name)(x, "digit"), ref)
    assert main(["convert", str(root / "s1.pth"), str(tmp_path / "o1.pth"), "--to", "original"]) == 0
    assert read_checkpoint(tmp_path / "o1.pth")[0] == "original_stage1"


@pytest.mark.parametrize("argv, message", [
    (["convert", "{s1}", "{tmp}/y.safetensors", "--to", "ours"], "extension '.safetensors'; expected .pth or .pt"),
    (["convert", "{s1}", "{tmp}/y.pth", "--to", "safetensors"], "extension '.pth'; expected .safetensors"),
    (["convert", "{s1}", "{tmp}/x.txt"], "extension '.txt'"),
    (["adapt", "{imgs}", "-c", "{s1}", "-o", "{tmp}/a.npy"], "--output (a checkpoint)"),
    (["embed", "{imgs}", "-c", "{tmp}/never-loaded.pth", "-o", "{tmp}/f.txt"], "expected .npy or .safetensors"),
])
def test_output_file_types_are_checked_before_any_work(files, tmp_path, capsys, argv, message):
    root, _ = files
    args = [a.format(s1=root / "s1.pth", imgs=root / "imgs", tmp=tmp_path) for a in argv]
    assert main(args) == 2
    assert message in capsys.readouterr().err  # the embed checkpoint does not exist: the suffix is checked first
    assert not list(tmp_path.iterdir())


def test_export_matches_pytorch(files, tmp_path, capsys):
    pytest.importorskip("onnx")
    root, _ = files
    assert main(["export", "-c", str(root / "s1.pth"), "-o", str(tmp_path), "--input", "clip"]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "torchscript" in out
    assert (tmp_path / "touch_encoder.onnx").is_file() and (tmp_path / "touch_encoder.torchscript.pt").is_file()
    from anytouch.export import export_encoder

    enc = _encoder(root)
    checks = export_encoder(enc, tmp_path / "img", input="image", pooling="global")
    assert checks["torchscript"].max_abs_diff < 1e-5
    if checks["onnx"].max_abs_diff is not None:  # None when onnxruntime is not installed
        assert checks["onnx"].max_abs_diff < 1e-4
    with torch.no_grad():  # a batch size never traced, every sensor id
        x, s = torch.randn(5, 3, 56, 56), torch.tensor([0, 1, 2, 3, -1])
        with warnings.catch_warnings():  # torch.jit.load is deprecated in newer torch, still TorchScript's loader
            warnings.simplefilter("ignore", FutureWarning)
            ts = torch.jit.load(str(tmp_path / "img" / "touch_encoder.torchscript.pt"))
        assert torch.allclose(ts(x, s), enc(x, s, pooling="global"), atol=1e-5)


def test_adapt_command(files, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "adapted.pth"
    assert main(["adapt", str(root / "imgs"), "-c", str(root / "s2.pth"), "-o", str(out), "--steps", "3"]) == 0
    assert "--sensor 5" in capsys.readouterr().out
    from anytouch.checkpoint import load_checkpoint

    before, after = load_checkpoint(root / "s2.pth"), load_checkpoint(out)
    assert after["config"]["adapt"]["slot"] == 5 and after["config"]["adapt"]["frames"] == 3
    diff = [k for k in before["model"] if not torch.equal(before["model"][k], after["model"][k])]
    assert diff == ["touch.encoder.sensor_tokens"]
    assert main(["adapt", str(root / "imgs"), "-c", str(root / "s2.pth"), "-o", str(out), "--slot", "2"]) == 2
    assert "slot 2 is not free" in capsys.readouterr().err


def test_viz_commands(files, tmp_path):
    root, _ = files
    ck = str(root / "s2.pth")
    assert main(["viz", "mae", "-c", ck, "-o", str(tmp_path / "m.png"), "--num", "2"]) == 0
    assert main(["viz", "tsne", "-c", ck, "-o", str(tmp_path / "t.png"), "--materials", "3", "--per-sensor", "2"]) == 0
    assert main(["viz", "tsne", "-c", ck, "-o", str(tmp_path / "t2.png"), "--dataset", "tag_material", "of1",
                 "--num", "8", "--sensor", "universal"]) == 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"epoch_float": 0.5, "train_loss_full": 1.0}\n{"epoch_float": 1.0, '
                                   '"train_loss_full": 0.5}\n')
    assert main(["viz", "curves", f"stage 1={run}", "-o", str(tmp_path / "c.png")]) == 0
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("m.png", "t.png", "t2.png", "c.png"))


def test_bench_inference_script(tmp_path):
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_inference.py"
    res = subprocess.run([sys.executable, str(script), "--presets", "tiny", "--batch-sizes", "1", "2",
                          "--min-time", "0", "--min-iters", "1", "--json", str(tmp_path / "b.json")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [(r["input"], r["batch"]) for r in rows] == [("image", 1), ("image", 2), ("clip", 1), ("clip", 2)]
    assert all(r["items_per_s"] > 0 for r in rows) and "| tiny | 0.2 M | clips | 2 |" in res.stdout
