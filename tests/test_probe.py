"""Linear probes: metrics on known logits, Feel pair features, heads and their optimiser, selection rules, the
feature cache, official == cached without augmentation, and a probe beating chance on synthetic data."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from anytouch.data import build_dataset
from anytouch.data.device_aug import IDENTITY, stack_touch
from anytouch.data.io import DataError
from anytouch.data.config import SyntheticConfig
from anytouch.engine.dist import DistEnv
from anytouch.probe import cached as cached_mod
from anytouch.probe.cache import FeatureCache, checkpoint_identity
from anytouch.probe.cached import cached_features, fit_grid, grid_points
from anytouch.probe.config import ProbeConfig
from anytouch.probe.features import encode, extract_features, shard
from anytouch.probe.heads import GridAdamW, GridHeads, LinearHead
from anytouch.probe.official import evaluate, fit_official
from anytouch.probe import runner as runner_mod
from anytouch.probe.runner import ProbeRunner, load_probe_encoder
from anytouch.probe.selection import Curves, best_on_test, last_epoch, val_selected
from anytouch.probe.tasks import Recipe, correct, get_task, per_sample_loss
from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD
from anytouch.config import load_config
from anytouch.engine.rng import generator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CPU = DistEnv()


@pytest.fixture(autouse=True)
def one_thread():
    # Head training is thousands of tiny ops; on a loaded 2-core machine OpenMP's thread hand-off makes each of them
    # 100-1000x slower than on one thread. Restored after each test.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def encoder():
    return load_probe_encoder("random:tiny", seed=0)


def synthetic(name, split, n, **kw):
    return build_dataset(name, split, synthetic=SyntheticConfig(probe_samples=n), image_size=56, **kw)


def recipe(**kw):
    base = dict(pooling="cls", sensor=-1, epochs=3, batch_size=16, lr=0.05, weight_decay=0.05, betas=(0.9, 0.99),
                eps=1e-8, warmup_epochs=0.0, min_lr=0.0, seed=11, head_seed=12)
    return Recipe(**{**base, **kw})


# -- metrics --------------------------------------------------------------------------------------------------------

def test_binary_and_multiclass_accuracy_and_loss_on_known_logits():
    binary = get_task("tag_roughness")
    logits = torch.tensor([[2.0], [-1.0], [0.0], [0.3], [-0.2]])
    labels = torch.tensor([1, 1, 0, 0, 0])
    # sigmoid > 0.5: [1, 0, 0 (0.5 is not > 0.5), 1, 0] -> hits [1, 0, 1, 0, 1]
    assert correct(logits, labels, binary).tolist() == [True, False, True, False, True]
    expected = -(labels * F.logsigmoid(logits[:, 0]) + (1 - labels) * F.logsigmoid(-logits[:, 0]))
    assert torch.allclose(per_sample_loss(logits, labels, binary), expected)

    multi = get_task("of2")
    logits = torch.tensor([[0.1, 2.0, 0.0, 0, 0, 0, 0], [3.0, 1.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 5.0]])
    labels = torch.tensor([1, 1, 6])
    assert correct(logits, labels, multi).tolist() == [True, False, True]
    assert torch.allclose(per_sample_loss(logits, labels, multi), -F.log_softmax(logits, -1)[range(3), labels])
    # a leading grid axis: (G, B, C)
    grid = torch.stack([logits, -logits])
    assert correct(grid, labels, multi).shape == (2, 3)
    assert torch.allclose(per_sample_loss(grid, labels, multi)[1], F.cross_entropy(-logits, labels, reduction="none"))


class _LogitsAsFeatures(nn.Module):
    """Stand-in encoder: the normalised one-pixel frame of sample i (pixel value i) -> ``logits[i]``."""

    def __init__(self, logits):
        super().__init__()
        self.proj = nn.Linear(1, 1)
        self.logits = logits

    def forward(self, touch, sensor, pooling):
        index = ((touch[:, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255).round().long()
        return self.logits[index]


def test_evaluate_weights_batches_by_size_and_shards_without_padding():
    task = get_task("of2")
    logits = torch.randn(10, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([int(l.argmax()) for l in logits[:7]] + [int(l.argmin()) for l in logits[7:]])
    # samples as the loaders ship them (uint8 frames, here one pixel holding the sample index, + parameters)
    data = [{"touch": torch.full((3, 1, 1), i, dtype=torch.uint8), "touch_aug": IDENTITY, "label": labels[i]}
            for i in range(10)]
    # batches of 3, 3, 3, 1: hits 3, 3, 1, 0 -> 7/10 (the mean of per-batch accuracies would be 7/12)
    loader = DataLoader(data, batch_size=3)
    acc, loss, n = evaluate(_LogitsAsFeatures(logits), nn.Identity(), loader, task, recipe(), CPU)
    assert (acc, n) == (0.7, 10)
    assert loss == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    # 10 samples on 3 ranks: every sample exactly once (DistributedSampler pads to 12 and counts two twice)
    parts = [list(shard(10, DistEnv(rank=r, world_size=3))) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(10))
    padded = sum(len(list(DistributedSampler(data, num_replicas=3, rank=r, shuffle=False))) for r in range(3))
    assert padded == 12


# -- features and heads ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pooling", ["cls", "global"])
def test_feel_pair_feature_is_A_then_B(encoder, pooling):
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 56, 56, generator=g), torch.randn(2, 3, 56, 56, generator=g)
    with torch.no_grad():
        pair = encode(encoder, torch.stack([a, b], 1), 0, pooling, frames=2)  # (2, 2P)
        fa, fb = encoder(a, 0, pooling), encoder(b, 0, pooling)
        swapped = encode(encoder, torch.stack([b, a], 1), 0, pooling, frames=2)
        p = fa.shape[1]
        assert pair.shape == (2, 2 * p)
        assert torch.allclose(pair[:, :p], fa, atol=1e-5) and torch.allclose(pair[:, p:], fb, atol=1e-5)
        assert torch.allclose(swapped, torch.cat([fb, fa], 1), atol=1e-5)
        head = LinearHead(2 * p, 1, generator(0))
        assert not torch.allclose(head(pair), head(swapped))
    with pytest.raises(ValueError, match=r"\(B, 2, 3, H, W\)"):
        encode(encoder, a, 0, pooling, frames=2)


def test_head_init_and_grid_heads_share_it():
    head = LinearHead(768, 20, generator(5))
    assert head.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert head.bias.abs().max().item() <= 768 ** -0.5
    grid = GridHeads(4, 768, 20, generator(5))
    assert all(torch.equal(grid.weight[g], head.weight) and torch.equal(grid.bias[g], head.bias) for g in range(4))
    x = torch.randn(3, 768)
    assert torch.allclose(grid(x)[2], head(x), atol=1e-6)


def test_grid_adamw_equals_one_torch_adamw_per_head():
    torch.manual_seed(0)
    lrs, wds = [1e-2, 3e-3, 1e-1], [0.0, 0.05, 0.5]
    w0, b0 = torch.randn(3, 4, 5), torch.randn(3, 4)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = GridAdamW([w, b], torch.tensor(wds), (0.9, 0.99), 1e-8)
    refs = [(w0[g].clone().requires_grad_(), b0[g].clone().requires_grad_()) for g in range(3)]
    ref_opts = [torch.optim.AdamW(list(r), lr=lrs[g], betas=(0.9, 0.99), weight_decay=wds[g])
                for g, r in enumerate(refs)]
    for step in range(6):
        gw, gb = torch.randn(3, 4, 5), torch.randn(3, 4)
        scale = 1.0 - step / 6  # a changing schedule
        w.grad, b.grad = gw.clone(), gb.clone()
        opt.step(torch.tensor(lrs) * scale)
        for g, ((rw, rb), ro) in enumerate(zip(refs, ref_opts)):
            rw.grad, rb.grad = gw[g].clone(), gb[g].clone()
            ro.param_groups[0]["lr"] = lrs[g] * scale
            ro.step()
    for g, (rw, rb) in enumerate(refs):
        assert torch.allclose(w[g], rw, atol=1e-6) and torch.allclose(b[g], rb, atol=1e-6)


# -- selection rules ---------------------------------------------------------------------------------------------

def test_selection_rules_on_crafted_curves():
    test = Curves(acc=torch.tensor([[0.5, 0.8, 0.7, 0.6], [0.4, 0.55, 0.65, 0.75]]), loss=torch.ones(2, 4), n=100)
    val = Curves(acc=torch.tensor([[0.4, 0.5, 0.6, 0.5], [0.3, 0.6, 0.6, 0.55]]),
                 loss=torch.tensor([[1.0, 1.0, 0.7, 1.0], [1.0, 0.9, 0.7, 1.0]]), n=20)
    paper, last = best_on_test(test, 0), last_epoch(test, 0)
    assert (paper.g, paper.epoch, paper.acc) == (0, 1, pytest.approx(0.8))
    assert (last.g, last.epoch, last.acc) == (0, 3, pytest.approx(0.6))
    # val max 0.6 at (0,2), (1,1), (1,2); lowest val loss 0.7 at (0,2) and (1,2); the earlier grid point wins
    sel = val_selected(val, test)
    assert (sel.g, sel.epoch, sel.acc) == (0, 2, pytest.approx(0.7))
    # ties in test accuracy: the paper rule keeps the latest epoch; val ties at equal loss: the later epoch
    flat = Curves(acc=torch.tensor([[0.6, 0.7, 0.7]]), loss=torch.ones(1, 3), n=10)
    assert best_on_test(flat, 0).epoch == 2
    assert val_selected(flat, Curves(torch.tensor([[0.1, 0.2, 0.3]]), torch.ones(1, 3), 10)).epoch == 2
    assert grid_points([1e-3, 2e-4], [0.0, 0.05], (2e-4, 0.05))[0] == (2e-4, 0.05)
    assert len(grid_points([1e-3, 2e-4], [0.0, 0.05], (2e-4, 0.05))) == 4
    with pytest.raises(ValueError, match="differ in shape"):
        val_selected(flat, test)


# -- feature cache -------------------------------------------------------------------------------------------------

def test_feature_cache_reused_and_invalidated(encoder, tmp_path, monkeypatch):
    calls = []
    real = cached_mod.extract_features

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(cached_mod, "extract_features", counting)
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"weights v1")
    cache = FeatureCache(tmp_path / "cache")
    task = get_task("of2")

    def run(dataset, rec=recipe(), views=1):
        identity = {"checkpoint": checkpoint_identity(str(ckpt), 0), "dataset": {"name": "of2", "split": "test"}}
        n = len(calls)
        out, hit = cached_features(encoder, dataset, task, rec, identity=identity, views=views, env=CPU,
                                   dtype=torch.float32, batch_size=8, num_workers=0, cache=cache, label="of2-test",
                                   log=lambda m: None)
        assert hit == (len(calls) == n)  # the flag tells the truth
        return out, hit

    data = synthetic("of2", "test", 12)
    first, hit = run(data)
    assert not hit and first[0].shape == (1, 12, encoder.proj.out_features)
    again, hit = run(data)
    assert hit and torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    ckpt.write_bytes(b"weights v2")  # another checkpoint file content
    assert not run(data)[1]
    assert run(data)[1]
    assert not run(data, recipe(pooling="global"))[1]  # preprocessing: pooling
    assert not run(data, recipe(sensor=0))[1]  # preprocessing: sensor token
    assert not run(synthetic("of2", "test", 13))[1]  # another file list
    aug = synthetic("of1", "train", 12)  # augmented set: views and their seed matter
    assert not run(aug)[1]
    assert not run(aug, views=2)[1]
    assert not run(aug, recipe(seed=99))[1]
    assert run(aug, views=2)[1] and run(data)[1]
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == len(calls)


def test_views_follow_the_official_epochs(encoder):
    data = synthetic("of1", "train", 6)  # augmented
    feats, labels = extract_features(encoder, data, get_task("of1"), pooling="cls", sensor=-1, views=2, seed=3,
                                     batch_size=4, env=CPU, dtype=torch.float32)
    assert feats.shape == (2, 6, encoder.proj.out_features) and not torch.allclose(feats[0], feats[1])
    from anytouch.engine.data import EpochSeeded

    epoch1 = stack_touch([EpochSeeded(data, 3)[(1, i)] for i in range(6)])
    with torch.no_grad():
        assert torch.allclose(feats[1], encoder(epoch1, -1, "cls"), atol=1e-5)


# -- protocols -----------------------------------------------------------------------------------------------------

def test_cached_protocol_equals_official_without_augmentation(encoder):
    task = get_task("of2")  # OF2 has no training augmentation
    train, test = synthetic("of2", "train", 48), synthetic("of2", "test", 32)
    rec = recipe()
    official = fit_official(encoder, train, {"test": test}, task, rec, env=CPU, precision="fp32", eval_batch_size=64)
    feats = {name: extract_features(encoder, ds, task, pooling=rec.pooling, sensor=rec.sensor, views=1, seed=rec.seed,
                                    batch_size=64, env=CPU, dtype=torch.float32) for name, ds in
             (("train", train), ("test", test))}
    grid = fit_grid(feats["train"], {"test": feats["test"]}, task, rec, [(rec.lr, rec.weight_decay)], device=CPU.device)
    a, b = official.evals["test"], grid.evals["test"]
    assert official.steps_per_epoch == grid.steps_per_epoch == 3
    assert torch.allclose(official.train_loss, grid.train_loss, rtol=1e-4)
    assert torch.allclose(a.loss, b.loss, rtol=1e-4)
    assert torch.equal(a.acc, b.acc) and a.n == b.n == 32
    # the heads moved: the loss changed across epochs
    assert float((official.train_loss[0, 0] - official.train_loss[0, -1]).abs()) > 1e-3


def test_probe_beats_chance_on_synthetic_data(tmp_path):
    cfg = load_config(ProbeConfig, [], [
        "probe.tasks=[of2]", "probe.protocol=cached", "probe.checkpoint=random:tiny", "probe.pooling=global",
        "probe.sensor=-1", "probe.epochs=30", "probe.batch_size=32", "probe.val_fraction=0.2", "optim.lr=0.3",
        "optim.weight_decay=0.0", "probe.grid.lr=[0.1]", "probe.grid.weight_decay=[0.0]", "data.source=synthetic",
        "data.num_workers=0", "data.synthetic.probe_samples=256", f"run.output_dir={tmp_path / 'out'}",
        f"probe.cache_dir={tmp_path / 'cache'}",
    ])
    rows = ProbeRunner(cfg, CPU).run()
    labels = torch.tensor([synthetic("of2", "test", 256)[i]["label"] for i in range(256)])
    chance = 100 * float(torch.bincount(labels).max()) / 256  # majority class
    acc = {r["rule"]: r["accuracy"] for r in rows}
    assert set(acc) == {"paper", "last", "val"}
    assert acc["paper"] >= chance + 8 and acc["last"] >= chance + 8, (acc, chance)
    assert acc["paper"] >= acc["last"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["accuracy"] for r in saved["rows"]] == [r["accuracy"] for r in rows]
    assert "| of2 | cached | best test epoch (paper rule) |" in (tmp_path / "out" / "results.md").read_text()
    assert list((tmp_path / "out" / "of2" / "cached").glob("events.out.tfevents.*"))


def _of2_tree(root):
    """obj2.0/ with 14 objects of 7 classes, 3 train + 1 test PNG each; returns the split dict."""
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (7, 3))
    split, labels = {"train": [], "test": []}, {}
    for item in range(101, 115):
        labels[str(item)] = (item - 101) % 7
        folder = root / "obj2.0" / "touch" / str(item)
        folder.mkdir(parents=True)
        for png in range(4):
            pixels = np.clip(colours[labels[str(item)]] + rng.normal(0, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{png}.png")
            split["train" if png < 3 else "test"].append([str(item), str(png)])
    split["train"].append(["7", "0"])  # an OF1 object (id <= 100) is not part of OF2
    (root / "obj2.0" / "split.json").write_text(json.dumps(split))
    (root / "obj2.0" / "label.json").write_text(json.dumps({**labels, "7": 0}))
    return split


def test_skipped_probe_samples_are_reported(tmp_path, capsys):
    _of2_tree(tmp_path / "data")
    (tmp_path / "data" / "obj2.0" / "touch" / "104" / "3.png").write_bytes(b"not a png")  # a test image
    out = tmp_path / "out"
    ProbeRunner(load_config(ProbeConfig, [], [
        "probe.tasks=[of2]", "probe.protocol=cached", "probe.checkpoint=random:tiny", "probe.epochs=1",
        "probe.batch_size=8", "probe.val_fraction=0", f"data.root={tmp_path / 'data'}", "data.on_error=skip",
        "data.num_workers=0", f"probe.cache_dir={tmp_path / 'cache'}", "probe.grid.lr=[1e-2]",
        "probe.grid.weight_decay=[0.0]", f"run.output_dir={out}"]), CPU).run()
    log = capsys.readouterr().out
    assert "of2-test: skipped 1 unreadable sample load(s)" in log and "104/3.png" in log
    timings = json.loads((out / "results.json").read_text())["timings"]
    assert timings["of2"]["skipped_samples"] == {"test": 1}


def test_cached_probe_on_a_generated_objectfolder_tree(tmp_path, monkeypatch):
    """The real OF2 loader (obj2.0/split.json, label.json, touch PNGs) through the runner; the cache keys its file
    list."""
    from PIL import Image

    split = _of2_tree(tmp_path / "data")
    overrides = ["probe.tasks=[of2]", "probe.protocol=cached", "probe.checkpoint=random:tiny", "probe.epochs=2",
                 "probe.batch_size=8", "probe.val_fraction=0.25", f"data.root={tmp_path / 'data'}",
                 "data.num_workers=0", f"probe.cache_dir={tmp_path / 'cache'}", "probe.grid.lr=[1e-2]",
                 "probe.grid.weight_decay=[0.0]"]
    rows = ProbeRunner(load_config(ProbeConfig, [], overrides + [f"run.output_dir={tmp_path / 'a'}"]), CPU).run()
    assert [(r["rule"], r["n_train"], r["n_test"]) for r in rows] == [("paper", 42, 14), ("last", 42, 14),
                                                                       ("val", 42, 14)]
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*.safetensors"))
    assert len(cached) == 4
    # a changed file list (one more test image) invalidates the test-split features only
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "data" / "obj2.0" / "touch" / "101" / "9.png")
    split["test"].append(["101", "9"])
    (tmp_path / "data" / "obj2.0" / "split.json").write_text(json.dumps(split))
    rows = ProbeRunner(load_config(ProbeConfig, [], overrides + [f"run.output_dir={tmp_path / 'b'}"]), CPU).run()
    assert rows[0]["n_test"] == 15
    new = sorted(p.name for p in (tmp_path / "cache").glob("*.safetensors"))
    assert len(new) == 5 and [n for n in new if n not in cached][0].startswith("of2-test-")
    # an image rewritten in place (not sample 0; same list) invalidates its split's features
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(tmp_path / "data" / "obj2.0" / "touch" / "105" / "3.png")
    ProbeRunner(load_config(ProbeConfig, [], overrides + [f"run.output_dir={tmp_path / 'c'}"]), CPU).run()
    newer = sorted(p.name for p in (tmp_path / "cache").glob("*.safetensors"))
    assert len(newer) == 6 and [n for n in newer if n not in new][0].startswith("of2-test-")
    # the same checkpoint spec loading other weights (e.g. probe.arch changed, or the file rewritten with its old
    # size and mtime) gets its own features for every split
    real = runner_mod.load_probe_encoder

    def perturbed(*a, **kw):
        enc = real(*a, **kw)
        with torch.no_grad():
            enc.proj.weight[0, 0] += 1e-3
        return enc

    monkeypatch.setattr(runner_mod, "load_probe_encoder", perturbed)
    ProbeRunner(load_config(ProbeConfig, [], overrides + [f"run.output_dir={tmp_path / 'd'}"]), CPU).run()
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 10


def test_encoder_identity_sees_weights_and_architecture():
    from anytouch.models import TouchEncoder, get_arch
    from anytouch.probe.cache import encoder_identity

    torch.manual_seed(0)
    enc = TouchEncoder(get_arch("tiny"))
    a = encoder_identity(enc)
    assert encoder_identity(enc) == a
    with torch.no_grad():
        enc.proj.weight[0, 0] += 1e-6
    b = encoder_identity(enc)
    assert b["weights_sha256"] != a["weights_sha256"] and b["arch"] == a["arch"]
    enc2 = TouchEncoder(dataclasses.replace(get_arch("tiny"), touch=dataclasses.replace(get_arch("tiny").touch,
                                                                                          act="quick_gelu")))
    enc2.load_state_dict(enc.state_dict())  # same weights, another activation
    c = encoder_identity(enc2)
    assert c["weights_sha256"] == b["weights_sha256"] and c["arch"] != b["arch"]


def test_data_paths_of_a_dataset_move_its_probe_sets(tmp_path):
    from anytouch.data.config import DataConfig
    from anytouch.probe.tasks import folder_override

    d = DataConfig(root=str(tmp_path), paths={"tag": "/elsewhere/TAG"})
    assert folder_override(d, "tag_material") == folder_override(d, "tag_hardness") == "/elsewhere/TAG"
    assert folder_override(d, "of2") is None
    d = DataConfig(root=str(tmp_path), paths={"tag": "/elsewhere/TAG", "tag_material": "/only/material"})
    assert folder_override(d, "tag_material") == "/only/material" and folder_override(d, "tag_roughness") == "/elsewhere/TAG"


def test_probe_reads_the_encoder_and_its_architecture_from_a_checkpoint(tmp_path):
    from anytouch.checkpoint.ours import save_checkpoint
    from anytouch.models import TouchMAE, get_arch

    torch.manual_seed(3)
    mae = TouchMAE(get_arch("tiny"))
    path = save_checkpoint(tmp_path / "stage1.pth", mae)
    enc = load_probe_encoder(str(path))
    assert enc.arch.name == "tiny" and not enc.training
    assert not any(p.requires_grad for p in enc.parameters())
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(enc(x, 0, "global"), mae.encoder(x, 0, "global"), atol=1e-6)
    with pytest.raises(ValueError, match="probe.checkpoint is required"):
        load_probe_encoder(None)


def test_feel_split_is_chosen_by_config(tmp_path):
    from anytouch.data.synthetic_tree import write_synthetic_tree

    write_synthetic_tree(tmp_path / "data", names=["feel"])
    base = ["probe.tasks=[feel]", "probe.checkpoint=random:tiny", f"data.root={tmp_path / 'data'}",
            f"run.output_dir={tmp_path / 'out'}"]
    runner = ProbeRunner(load_config(ProbeConfig, [], base), CPU)
    assert len(runner.dataset("feel", "train", 0.0)) > 0  # split_3.npy, the default
    runner = ProbeRunner(load_config(ProbeConfig, [], base + ["probe.feel_split=1"]), CPU)
    with pytest.raises(DataError, match="split_1.npy"):
        runner.dataset("feel", "train", 0.0)


def test_several_seeds_report_mean_and_std_and_share_unaugmented_features(tmp_path, monkeypatch):
    calls = []
    real = cached_mod.extract_features
    monkeypatch.setattr(cached_mod, "extract_features", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    base = ["probe.tasks=[of2]", "probe.protocol=cached", "probe.checkpoint=random:tiny", "probe.epochs=3",
            "probe.batch_size=16", "probe.val_fraction=0", "data.source=synthetic", "data.num_workers=0",
            "data.synthetic.probe_samples=64", "probe.grid.lr=[1e-2]", "probe.grid.weight_decay=[0.0]",
            f"probe.cache_dir={tmp_path / 'cache'}"]
    one = ProbeRunner(load_config(ProbeConfig, [], base + [f"run.output_dir={tmp_path / 'one'}"]), CPU).run()
    three = ProbeRunner(load_config(ProbeConfig, [], base + [f"run.output_dir={tmp_path / 'three'}",
                                                             "probe.seeds=3"]), CPU).run()
    assert len(calls) == 2  # OF2 is not augmented: train and test features extracted once, for every seed
    assert [r["rule"] for r in three] == [r["rule"] for r in one] == ["paper", "last"]
    for a, b in zip(one, three):
        assert b["n_seeds"] == 3 and len(b["accuracies"]) == 3
        assert b["accuracies"][0] == a["accuracy"]  # seed 0 is the single run
        assert b["accuracy"] == pytest.approx(float(np.mean(b["accuracies"])), abs=0.006)
        assert b["accuracy_std"] == pytest.approx(float(np.std(b["accuracies"], ddof=1)), abs=0.006)
    assert len(set(three[1]["accuracies"])) > 1  # the seeds differ
    assert "± " in (tmp_path / "three" / "results.md").read_text()
    assert (tmp_path / "three" / "of2" / "cached_seed2").is_dir()


def test_runner_returns_named_results_and_keeps_no_state_between_calls(tmp_path):
    base = ["probe.tasks=[of2]", "probe.protocol=cached", "probe.checkpoint=random:tiny", "probe.epochs=2",
            "probe.batch_size=8", "probe.val_fraction=0.25", "probe.seeds=2", "data.source=synthetic",
            "data.num_workers=0", "data.synthetic.probe_samples=16", "probe.grid.lr=[1e-2]",
            "probe.grid.weight_decay=[0.0]", f"probe.cache_dir={tmp_path / 'cache'}", f"run.output_dir={tmp_path}"]
    runner = ProbeRunner(load_config(ProbeConfig, [], base), CPU)
    task = runner.tasks[0]
    before = dict(vars(runner))
    runs = runner.run_protocol("cached", task, runner.recipe(task), runner.splits(task))
    assert vars(runner) == before  # nothing handed from one call to the next through the instance
    assert [type(r) for r in runs] == [runner_mod.ProtocolRun] * 2
    for r in runs:
        assert set(r.full.evals) == {"test"} and set(r.selection.evals) == {"val"}
        assert r.points[0] == (runner.recipe(task).lr, runner.recipe(task).weight_decay)
        assert set(r.timing) == {"extract_s", "extracted_images", "fit_s"}
    assert not torch.equal(runs[0].full.train_loss, runs[1].full.train_loss)  # the two seeds differ
    result = runner.run_task(task)
    assert isinstance(result, runner_mod.TaskResult) and vars(runner) == before
    assert [r["rule"] for r in result.rows] == ["paper", "last", "val"] and result.rows[0]["n_seeds"] == 2
    assert result.curves["cached"]["train_loss"] == runs[0].full.train_loss[0].tolist()
