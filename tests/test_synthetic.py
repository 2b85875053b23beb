"""Built-in synthetic data: determinism, the sample contract of every name, modality flags per source, the
cross-sensor wrapping, learnable probe labels, and the on-disk synthetic tree read back by the real loaders."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier

from anytouch.data import PROBE_NAMES, DataConfig, build_dataset, build_pretrain_set
from anytouch.data.config import PRETRAIN_SOURCES, SyntheticConfig
from anytouch.data.device_aug import IDENTITY, stack_touch
from anytouch.data.probe_sets import HARD_MATERIALS
from anytouch.data.synthetic import build_synthetic
from anytouch.data.synthetic_render import TAG_MATERIALS
from anytouch.data.synthetic_tree import write_synthetic_tree
from anytouch.data.verify import verify

CFG = SyntheticConfig(num_samples=24, probe_samples=24, cross_samples=24, seed=0, render_size=32)


def test_same_seed_same_tensors_other_seed_other_tensors():
    for name, kw in (("tag_material", {}), ("feel", {}), ("tacquad", {"clip": "video", "stage": 2})):
        a = build_synthetic(name, image_size=16, vision_size=16, synthetic=CFG, train=False, **kw)
        b = build_synthetic(name, image_size=16, vision_size=16, synthetic=CFG, train=False, **kw)
        c = build_synthetic(name, image_size=16, vision_size=16, synthetic=CFG, train=False, seed=1, **kw)
        for i in (0, 5):
            sa, sb, sc = a[i], b[i], c[i]
            for k, v in sa.items():
                assert torch.equal(v, sb[k]) if torch.is_tensor(v) else v == sb[k], (name, k)
            assert not torch.equal(sa["touch"], sc["touch"])
        assert not torch.equal(a[0]["touch"], a[1]["touch"])
    # train vs test streams differ; augmented samples follow torch's RNG (the engine seeds it per sample)
    tr = build_synthetic("of1", "train", image_size=16, synthetic=CFG, train=True)
    te = build_synthetic("of1", "test", image_size=16, synthetic=CFG)
    assert not torch.equal(build_synthetic("of1", "train", image_size=16, synthetic=CFG, train=False)[0]["touch"],
                           te[0]["touch"])
    torch.manual_seed(3)
    x = tr[2]["touch_aug"]
    torch.manual_seed(3)
    assert torch.equal(x, tr[2]["touch_aug"]) and not torch.equal(x, tr[2]["touch_aug"])  # the next draw differs
    assert torch.equal(te[2]["touch_aug"], IDENTITY)


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_probe_contract(name):
    ds = build_dataset(name, "test", synthetic=CFG, image_size=16)
    s = ds[0]
    assert set(s) == {"touch", "touch_aug", "sensor", "label", "source"} and s["source"] == name
    assert s["touch"].shape == ((2, 3, 16, 16) if name == "feel" else (3, 16, 16)) and s["touch"].dtype == torch.uint8
    assert s["sensor"] == (-1 if name.startswith("of") else 0)
    n_classes = {"tag_material": 20, "of1": 7, "of2": 7}.get(name, 2)
    assert all(0 <= ds[i]["label"] < n_classes for i in range(len(ds)))
    assert len(ds) == CFG.probe_samples


def test_tag_labels_are_consistent_across_the_three_tasks():
    sets = {n: build_synthetic(n, "test", image_size=8, synthetic=CFG, train=False)
            for n in ("tag_material", "tag_roughness", "tag_hardness")}
    for i in range(len(sets["tag_material"])):
        m = sets["tag_material"][i]
        assert torch.equal(m["touch"], sets["tag_hardness"][i]["touch"])  # same images, other labels
        assert sets["tag_hardness"][i]["label"] == int(m["label"] in HARD_MATERIALS)
        assert sets["tag_roughness"][i]["label"] == int(TAG_MATERIALS[m["label"]].rough)


@pytest.mark.parametrize("stage,clip", [(1, "image"), (1, "video"), (2, "image"), (2, "video")])
def test_pretrain_contract_and_flags(stage, clip):
    cfg, flags = SyntheticConfig(num_samples=12, seed=0, render_size=32), {}
    for name in PRETRAIN_SOURCES:
        if name == "ssvtp" and clip == "video":
            with pytest.raises(ValueError, match="no clips"):
                build_synthetic(name, clip=clip, synthetic=cfg)
            continue
        ds = build_synthetic(name, image_size=16, vision_size=24, clip=clip, stage=stage, synthetic=cfg)
        s = ds[1]
        assert s["touch"].shape == ((4, 3, 16, 16) if clip == "video" else (3, 16, 16)) and s["source"] == name
        if stage == 1:
            assert set(s) == {"touch", "touch_aug", "sensor", "source"}
            continue
        assert s["vision"].shape == (3, 24, 24) and s["text_ids"].shape == s["text_mask"].shape == (77,)
        samples = [ds[i] for i in range(len(ds))]
        flags[name] = (max(x["vision_flag"] for x in samples), [x["text_flag"] for x in samples])
        if not s["vision_flag"]:
            assert not s["vision"].any()
        if not s["text_flag"]:
            assert not s["text_ids"].any() and not s["text_mask"].any()
    if stage == 2:
        assert flags["cloth"][0] == 0 and not any(flags["cloth"][1]) and flags["ycb_slide"][0] == 0
        assert flags["visgel"][0] == 1 and not any(flags["visgel"][1])
        assert flags["octopi"][0] == 0 and all(flags["octopi"][1])
        assert 0 < sum(flags["tag"][1]) < len(flags["tag"][1])  # TAG withholds some texts (test_flag rows)


def test_cross_sensor_triplets_via_build_dataset():
    ds = build_dataset("tacquad", synthetic=CFG, clip="cross_video", image_size=16)
    frames = build_synthetic("tacquad", clip="cross_video", synthetic=CFG)
    for i in range(6):
        s = ds[i]
        assert s["anchor"].shape == s["positive"].shape == s["negative"].shape == (3, 3, 16, 16)
        assert s["anchor_sensor"] != s["positive_sensor"] and {s["anchor_sensor"], s["positive_sensor"]} <= {1, 3, 4}
        a, p, n = ds.draw(i)
        assert frames.object_ids[a] == frames.object_ids[p] != frames.object_ids[n]


def test_synthetic_pretrain_set_mixes_with_repeats(capsys):
    repeats = {s: 1 for s in PRETRAIN_SOURCES}
    repeats.update(tag=2, cloth=0)
    cfg = DataConfig(source="synthetic", repeats=repeats, synthetic=CFG)
    ds = build_pretrain_set(cfg, 1, "video", 16, 16)
    assert len(ds) == CFG.num_samples * (len(PRETRAIN_SOURCES) - 3 + 2)  # ssvtp: images only; cloth off; tag x2
    assert "tag" in capsys.readouterr().out
    assert {ds[i]["source"] for i in range(0, len(ds), CFG.num_samples)} == set(PRETRAIN_SOURCES) - {"ssvtp", "cloth"}


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError, match="unknown option"):
        build_synthetic("tag", synthetic=CFG, stgae=2)


def _features(name, split, n):
    ds = build_synthetic(name, split, image_size=12, num_samples=n, seed=0, render_size=32, train=False)
    samples = [ds[i] for i in range(len(ds))]
    return stack_touch(samples).reshape(len(samples), -1).numpy(), np.array([s["label"] for s in samples])


def test_probe_labels_are_linearly_learnable():
    """A linear classifier on 12x12 pixels clearly beats the majority class on every synthetic probe task."""
    cache = {}
    for name in PROBE_NAMES:
        key = "tag" if name.startswith("tag_") else name
        if key not in cache:
            cache[key] = (_features(name, "train", 320), _features(name, "test", 160))
        (xtr, ytr), (xte, yte) = cache[key]
        if key == "tag":  # the three TAG tasks share the images; relabel
            ytr, yte = (np.array([{"tag_material": m, "tag_roughness": int(TAG_MATERIALS[m].rough),
                                   "tag_hardness": int(m in HARD_MATERIALS)}[name] for m in y]) for y in (ytr, yte))
        acc = RidgeClassifier(alpha=10.0).fit(xtr, ytr).score(xte, yte)
        majority = max(np.mean(yte == c) for c in np.unique(yte))
        margin = 0.1 if len(np.unique(ytr)) == 2 else 0.15
        assert acc >= majority + margin, (name, acc, majority)


def test_synthetic_tree_is_read_by_the_real_loaders(tmp_path):
    root = str(tmp_path)
    counts = write_synthetic_tree(root, names=["tacquad", "tag", "feel", "objectfolder"], sequences=2, frames=4,
                                  size=32, progress=False)
    assert all(n > 0 for n in counts.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a loader warning means the tree misses something it reads
        warnings.filterwarnings("ignore", message=".*TorchVision.*deprecated")
        quad = build_dataset("tacquad", root=root, clip="video", stage=2, image_size=16, vision_size=16)
        assert len(quad) > 0 and quad[0]["vision_flag"] == 1 and quad[0]["text_flag"] == 1
        tag2 = build_dataset("tag", root=root, stage=2, image_size=16, vision_size=16)
        assert {tag2[i]["text_flag"] for i in range(len(tag2))} == {0, 1}
        assert len(build_dataset("tacquad", root=root, clip="cross_image", image_size=16)) > 0
    material = build_dataset("tag_material", "train", root=root, image_size=16)
    assert len(material) == 3 and {s["label"] for s in (material[i] for i in range(3))} < set(range(20))
    feel = build_dataset("feel", "test", root=root, image_size=16)
    assert len(feel) == 4 and feel[0]["touch"].shape == (2, 3, 16, 16)
    assert len(build_dataset("of1", "test", root=root)) == 3 and len(build_dataset("of2", "train", root=root)) == 9
    rows = {r["name"]: r for r in verify(root, ["tacquad", "tag", "tag_material", "feel", "of1", "of2"],
                                         progress=False)}
    assert all(r["status"] == "ok" and r["checked"] > 0 for r in rows.values()), rows
