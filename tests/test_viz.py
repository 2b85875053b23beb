"""Pictures: what the MAE grid shows (kept patches verbatim, removed ones grey, the true and predicted next frame),
the k-NN agreement behind the t-SNE titles, reading both log formats for the curves, and that each writes a PNG."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.models import AnyTouchModel, TouchMAE, get_arch
from anytouch.viz import (mae_grid, mae_panels, neighbour_agreement, plot_curves, plot_tsne, read_log,
                          synthetic_sensor_set)
from anytouch.viz.common import to_rgb


@pytest.fixture(scope="module")
def mae():
    torch.manual_seed(0)
    return TouchMAE(get_arch("tiny")).eval()


def test_mae_panels_clip(mae):
    torch.manual_seed(1)
    clips = torch.randn(3, 4, 3, 56, 56)
    p = mae_panels(mae, clips, "digit", mask_ratio=0.75, seed=3)
    assert set(p) == {"input", "masked", "reconstruction", "next", "predicted_next", "mask"}
    mask = p["mask"].bool()  # (B, H, W)
    n = mae.num_patches
    assert torch.all(mask.flatten(1).float().mean(1) == (n - int(n * 0.25)) / n)  # 12 of 16 patches removed
    inp = to_rgb(clips[:, 2])  # the last input frame
    assert torch.allclose(p["input"], inp)
    assert torch.allclose(p["reconstruction"][~mask], inp[~mask])  # kept patches are shown as they are
    assert not torch.allclose(p["reconstruction"][mask], inp[mask])  # removed ones come from the decoder
    assert torch.all(p["masked"][mask] == 0.35) and torch.allclose(p["masked"][~mask], inp[~mask])
    assert torch.allclose(p["next"], to_rgb(clips[:, 3]))
    pred = mae.unpatchify(mae(clips, "digit", noise=torch.rand(3, n, generator=torch.Generator().manual_seed(3)))
                          ["pred"])
    assert torch.allclose(p["predicted_next"], to_rgb(pred[:, 3]), atol=1e-6)
    assert torch.equal(mae_panels(mae, clips, 1, seed=3)["mask"], p["mask"])  # same seed, same mask
    assert not torch.equal(mae_panels(mae, clips, 1, seed=4)["mask"], p["mask"])


def test_mae_panels_image_and_model_wrapper(tmp_path):
    torch.manual_seed(0)
    model = AnyTouchModel(get_arch("tiny"), towers=False).eval()
    imgs = torch.randn(2, 3, 56, 56)
    p = mae_panels(model, imgs, 0)
    assert "next" not in p and p["reconstruction"].shape == (2, 56, 56, 3)
    out = mae_grid(model, imgs, [0, 1], tmp_path / "g.png")
    w, h = Image.open(out).size
    assert w > h  # 3 columns, 2 rows
    with pytest.raises(TypeError, match="AnyTouchModel or a TouchMAE"):
        mae_panels(model.encoder, imgs, 0)
    with pytest.raises(ValueError, match="PNG"):
        mae_grid(model, imgs, 0, tmp_path / "g.jpg")


def test_neighbour_agreement():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 10
    keys = np.repeat(np.arange(4), 20)
    clustered = centres[keys] + rng.normal(size=(80, 16))
    assert neighbour_agreement(clustered, keys) == 1.0
    shuffled = rng.permutation(keys)
    assert neighbour_agreement(clustered, shuffled) < 0.45  # chance is ~0.24


def test_tsne_picture(tmp_path):
    touch, sensors, labels = synthetic_sensor_set(num_materials=3, per_sensor=2, sensors=(0, 3), image_size=28)
    assert touch.shape == (12, 3, 28, 28) and list(sensors[:4]) == [0, 0, 3, 3]
    assert len(set(labels)) == 3
    # 3 materials x 2 sensors x 10 frames, embeddings grouped by material, not by sensor
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(3), 20)
    sensor = np.tile(np.repeat([0, 3], 10), 3)
    feats = 5 * np.eye(3)[label] + 0.3 * sensor[:, None] / 3 + rng.normal(scale=0.5, size=(60, 3))
    names = np.array(["wood", "foam", "glass"])[label]
    stats = plot_tsne(feats, sensor, names, tmp_path / "t.png")
    assert Image.open(tmp_path / "t.png").size[0] > 500
    assert stats["same_label"] > 0.9 and stats["same_sensor"] < 0.75
    with pytest.raises(ValueError, match="differ in length"):
        plot_tsne(feats, sensor[:5], names, tmp_path / "t.png")
    with pytest.raises(ValueError, match="num_materials"):
        synthetic_sensor_set(num_materials=0)


def test_curves_from_jsonl_and_tensorboard(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "log.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"epoch": 0, "step": i, "epoch_float": i / 4, "train_loss_full": 1.0 / (i + 1),
                                "lr": 1e-3, "note": "text"}) + "\n")
        f.write(json.dumps({"epoch_float": 1.0, "train_loss_full": "nan"}) + "\n")
    log = read_log(run)
    assert set(log) == {"train_loss_full", "lr"}  # positions and text fields are not curves
    x, y = log["train_loss_full"]
    assert list(x) == [0, 0.25, 0.5, 0.75, 1.0] and np.isnan(y[-1]) and y[1] == 0.5

    from torch.utils.tensorboard import SummaryWriter

    tb = tmp_path / "tb"
    with SummaryWriter(str(tb)) as w:
        for step in (0, 500, 1000):
            w.add_scalar("loss", step / 1000, step)
    x, y = read_log(tb)["loss"]
    assert np.allclose(x, [0, 0.5, 1.0]) and np.allclose(y, [0, 0.5, 1.0])  # x axis back in epochs

    out = plot_curves({"a": run, "b": tb}, tmp_path / "c.png")
    assert Image.open(out).size[0] > 0
    with pytest.raises(ValueError, match="no run logged"):
        plot_curves({"a": run}, tmp_path / "c.png", keys=["missing"])
    with pytest.raises(FileNotFoundError, match="no log.jsonl"):
        read_log(tmp_path)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_log(tmp_path / "bad.jsonl")


def _captured_figure(monkeypatch, module):
    """Make ``module``'s save_png keep the figure instead of writing and closing it."""
    figs = []
    monkeypatch.setattr(module, "save_png", lambda fig, path: figs.append(fig) or path)
    return figs


def test_curves_have_y_labels_chance_lines_validation_and_marks(tmp_path, monkeypatch):
    import math

    import anytouch.viz.curves as curves

    with open(tmp_path / "log.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"epoch_float": i / 2, "train_loss_image_cross_pos": 0.69, "train_acc_image_cross": 0.5,
                                "val_acc_image_cross": 0.55, "train_loss_image_mae": 0.3, "lr": 1e-3}) + "\n")
    figs = _captured_figure(monkeypatch, curves)
    plot_curves({"run": tmp_path}, tmp_path / "c.png", marks={"train_acc_image_cross": (2.0, 0.6, "held-out")})
    axes = {ax.get_title(): ax for ax in figs[0].axes if ax.get_title()}
    assert set(axes) == {"train_loss_image_cross_pos", "train_acc_image_cross", "train_loss_image_mae", "lr"}
    assert {k: ax.get_ylabel() for k, ax in axes.items()} == {
        "train_loss_image_cross_pos": "BCE", "train_acc_image_cross": "accuracy",
        "train_loss_image_mae": "MSE (normalised pixels)", "lr": "learning rate"}

    def chance(ax):
        return [line.get_ydata()[0] for line in ax.get_lines() if (line.get_label() or "").startswith("chance")]

    assert chance(axes["train_loss_image_cross_pos"]) == [pytest.approx(math.log(2))]
    assert chance(axes["train_acc_image_cross"]) == [0.5] and chance(axes["train_loss_image_mae"]) == []
    labels = [line.get_label() for line in axes["train_acc_image_cross"].get_lines()]
    assert "run (validation)" in labels and "held-out" in labels  # val_ curve and the mark share the panel
    with pytest.raises(ValueError, match="not plotted"):
        plot_curves({"run": tmp_path}, tmp_path / "c.png", keys=["lr"], marks={"train_acc_image_cross": (1, 1, "x")})


def test_mae_grid_labels_rows_with_sensor_and_errors(mae, tmp_path, monkeypatch):
    import anytouch.viz.mae as mae_module
    from anytouch.viz import mae_errors

    torch.manual_seed(2)
    clips = torch.randn(2, 4, 3, 56, 56)
    p = mae_panels(mae, clips, [1, -1], seed=0)
    err = mae_errors(p)
    m = p["mask"].bool()
    expected = ((p["reconstruction"] - p["input"]) ** 2)[0][m[0]].mean()
    assert torch.allclose(err["reconstruction"][0], expected)  # removed patches only
    assert torch.allclose(err["copy_last"], ((p["input"] - p["next"]) ** 2).flatten(1).mean(1))
    assert torch.allclose(err["prediction"], ((p["predicted_next"] - p["next"]) ** 2).flatten(1).mean(1))
    figs = _captured_figure(monkeypatch, mae_module)
    mae_grid(mae, clips, [1, -1], tmp_path / "g.png")
    rows = np.asarray(figs[0].axes).reshape(2, 5)
    assert [r[0].get_ylabel() for r in rows] == ["digit", "universal"]
    assert rows[1][2].get_xlabel() == f"MSE {err['reconstruction'][1]:.4f} (masked)"
    assert rows[0][4].get_xlabel().startswith(f"MSE {err['prediction'][0]:.4f}")
