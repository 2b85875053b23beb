"""The benchmark task sets: each loader reads a fixture tree written in its release's format (the synthetic tree
writers), ``prepare`` / ``verify`` work on it, the synthetic twins are physically consistent, and
``build_task_dataset`` applies frozen splits and nested, stratified budgets."""
import io
import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.bench.tasks import TASKS, budget_indices, build_task_dataset, get_task
from anytouch.data import build_dataset
from anytouch.data import prepare as P
from anytouch.data.bench_render import K_NORMAL, K_SHEAR, MU, PAD_METRES, press_window, sensor_look
from anytouch.data.io import DataError, read_image
from anytouch.data.synthetic_tree import write_synthetic_tree
from anytouch.data.verify import verify

BENCH = ["cloth_textile", "force", "slip", "pose"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bench_tree"))
    write_synthetic_tree(root, names=["force_slip", "pose", "cloth_textile"], sequences=2, frames=8, size=16,
                         progress=False)
    return root


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_force_and_slip_read_the_release_format(tree):
    batch = os.path.join(tree, "digit-force-estimation", "sphere", "batch_1")
    with open(os.path.join(batch, "dataset_slip_forces.pkl"), "rb") as f:
        labels = pickle.load(f)
    frames = []
    for k in (0, 1):  # the frame files of a batch are one sequence
        with open(os.path.join(batch, f"dataset_digit_{k:02d}.pkl"), "rb") as f:
            frames += pickle.load(f)
    traj = labels["trajectories"][0]
    force = build_dataset("force", "train", root=tree)
    s = force[0]
    assert s["group"] == "sphere/batch_1/0" and s["sensor"] == "digit" and s["has_background"]
    assert s["frames"].dtype == torch.uint8 and s["frames"].shape == (2, 16, 16, 3)
    np.testing.assert_array_equal(s["frames"][0].numpy(), _png(frames[traj["indexes"][0]]))
    np.testing.assert_array_equal(s["frames"][1].numpy(), _png(frames[traj["indexes"][5]]))
    np.testing.assert_array_equal(s["background"].numpy(), _png(frames[0]))  # in_contact == 0
    np.testing.assert_allclose(s["target"].numpy(), traj["forces"][5])
    assert len(force) == 2 * 2 * (8 - 5)  # two batches x two trajectories x positions 5..7
    slip = build_dataset("slip", "test", root=tree)
    assert {x.split("/")[0] + "/" + x.split("/")[1] for x in [slip[i]["group"] for i in range(len(slip))]} == \
        {"sphere2/batch_test"}
    assert slip.labels() == [int(slip[i]["target"]) for i in range(len(slip))]
    sets = {split: build_dataset("force", split, root=tree) for split in ("train", "val", "test")}
    groups = {split: {ds[i]["group"].rsplit("/", 1)[0] for i in range(len(ds))} for split, ds in sets.items()}
    assert groups["test"] == {"flat/batch_1"} and not groups["train"] & groups["val"]
    mini = build_dataset("force", "test", root=tree, sensor="gelsight_mini", frames=3, stride=2)
    assert mini[0]["sensor"] == "gelsight_mini" and mini[0]["frames"].shape[0] == 3


def test_pose_and_textile_read_the_release_format(tree):
    pose = build_dataset("pose", "test", root=tree)
    with open(os.path.join(tree, "digit-pose-estimation", "test", "pringles", "bag_00.pkl"), "rb") as f:
        bag = pickle.load(f)
    s = pose[0]
    T = bag["object_ring_rel_pose_n5"][5]
    np.testing.assert_allclose(s["target"].numpy(), [T[0, 3] * 1e-3, T[1, 3] * 1e-3, np.arctan2(T[1, 0], T[0, 0])],
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(s["frames"][0].numpy(), _png(bag["digit_ring"][0]))
    train, val = build_dataset("pose", "train", root=tree), build_dataset("pose", "val", root=tree)
    assert len(val) and not {train[i]["group"] for i in range(len(train))} & {val[i]["group"] for i in range(len(val))}
    with pytest.raises(ValueError, match="frames=2, stride=5"):
        build_dataset("pose", "train", root=tree, stride=3)
    cloth = {split: build_dataset("cloth_textile", split, root=tree) for split in ("train", "val", "test")}
    c = cloth["test"][0]
    assert c["frames"].shape == (4, 16, 16, 3) and c["sensor"] == "gelsight"
    assert int(c["target"]) == int(c["group"]) % 20  # the tree's textile type of garment 200 + g is g mod 20
    garments = {k: {ds[i]["group"] for i in range(len(ds))} for k, ds in cloth.items()}
    assert not garments["train"] & garments["val"] and not garments["train"] & garments["test"]


def test_verify_and_prepare(tree, tmp_path):
    rows = {r["name"]: r for r in verify(tree, BENCH, progress=False)}
    assert all(r["status"] == "ok" and r["samples"] > 0 and r["files"] > 0 for r in rows.values()), rows
    # force: a download copied into place through the CLI, sensor read off the file names
    out = P.main(["force", "--raw", os.path.join(tree, "gelsight-force-estimation"), "--root", str(tmp_path / "r")])
    assert out["batches"] == 9 and os.path.isdir(tmp_path / "r" / "gelsight-force-estimation" / "flat" / "batch_1")
    assert len(build_dataset("force", "test", root=str(tmp_path / "r"), sensor="gelsight_mini")) > 0
    # pose: linked; textile: without split files a garment-level split is written in AnyTouch 2's format
    P.main(["pose", "--raw", os.path.join(tree, "digit-pose-estimation"), "--root", str(tmp_path / "r"),
            "--mode", "symlink"])
    assert verify(str(tmp_path / "r"), ["pose"], progress=False)[0]["status"] == "ok"
    raw = tmp_path / "at2data"
    raw.mkdir()
    base = os.path.join(tree, "yuan18", "Data_ICRA18")
    (raw / "cloth_metadata.json").write_text(open(os.path.join(base, "cloth_metadata.json")).read())
    root2 = tmp_path / "r2" / "yuan18" / "Data_ICRA18"
    root2.mkdir(parents=True)
    os.symlink(os.path.join(base, "Data"), root2 / "Data")
    counts = P.main(["cloth_textile", "--raw", str(raw), "--root", str(tmp_path / "r2")])
    assert counts["train"] + counts["test"] == 6 * 2 and counts["test"] > 0
    test_split = json.loads((root2 / "test_data_new.json").read_text())
    train_split = json.loads((root2 / "train_data_new.json").read_text())
    assert not {r["cloth_index"] for r in test_split.values()} & {r["cloth_index"] for r in train_split.values()}
    assert verify(str(tmp_path / "r2"), ["cloth_textile"], progress=False)[0]["status"] == "ok"


def test_loader_errors_name_the_file(tree, tmp_path):
    with pytest.raises(DataError, match="batch folder not found: .*sphere/batch_1"):
        build_dataset("force", "train", root=str(tmp_path))
    bad = tmp_path / "digit-force-estimation" / "sphere2" / "batch_1"
    bad.mkdir(parents=True)
    (bad / "dataset_slip_forces.pkl").write_bytes(pickle.dumps({"in_contact": [0], "trajectories": {0: {
        "indexes": [0, 1], "forces": [[0, 0, 1]], "slip_label": [0]}}}))
    with pytest.raises(DataError, match="trajectory 0"):
        build_dataset("slip", "train", root=str(tmp_path))
    (bad / "dataset_slip_forces.pkl").write_bytes(pickle.dumps(os.system))  # a global: refused, not run
    with pytest.raises(DataError, match="refusing to load global"):
        build_dataset("slip", "train", root=str(tmp_path))
    meta = tmp_path / "yuan18" / "Data_ICRA18"
    meta.mkdir(parents=True)
    (meta / "cloth_metadata.json").write_text(json.dumps({"7": [0, 0, 25]}))
    (meta / "test_data_new.json").write_text(json.dumps({"0": {"cloth_index": 7, "trial_index": 1, "count": 9}}))
    with pytest.raises(DataError, match="textile type of cloth '7' is 25"):
        build_dataset("cloth_textile", "test", root=str(tmp_path))


def test_synthetic_press_is_physical():
    look = sensor_look("digit")
    depth_fz, moves = [], []
    for i in range(40):
        rng = np.random.default_rng(i)
        frames, bg, forces, slips = press_window(rng, i % 2, 2, 5, 32, look, "sphere")
        fz = forces[-1, 2]
        depth_fz.append((np.abs(frames[-1].astype(int) - bg).mean(), fz))
        shear = np.hypot(*forces[-1, :2])
        assert shear <= MU * fz + 1e-5  # inside the friction cone
        assert slips[-1] == (i % 2) and (shear == pytest.approx(MU * fz, rel=1e-4)) == bool(i % 2)
        assert forces[0, :2] == pytest.approx([0, 0], abs=1e-6)  # the drag starts at the oldest frame
        moves.append(shear / K_SHEAR)
    signal, fz = np.array(depth_fz).T
    assert np.corrcoef(np.argsort(np.argsort(signal)), np.argsort(np.argsort(fz)))[0, 1] > 0.8
    assert K_NORMAL > 0 and max(fz) < 8.0  # a plausible DIGIT load range (N)


def test_synthetic_pose_target_matches_the_motion():
    ds = build_dataset("pose", "train", synthetic=True, num_samples=6, image_size=32)
    for i in range(6):
        s = ds[i]
        t = s["target"].numpy()
        assert abs(t[0]) <= 0.12 * PAD_METRES / 2 + 1e-9 and abs(t[2]) <= 0.3
        assert s["frames"].shape == (2, 32, 32, 3) and not torch.equal(s["frames"][0], s["frames"][1])
    again = build_dataset("pose", "train", synthetic=True, num_samples=6, image_size=32)
    assert torch.equal(again[3]["frames"], ds[3]["frames"])  # a pure function of (seed, split, index)


def test_task_datasets_contract_and_budgets():
    for task in TASKS:
        ds = build_task_dataset(task, "train", synthetic=True, num_samples=24, image_size=16)
        s = ds[0]
        assert s["frames"].dtype == torch.uint8 and s["frames"].shape[1:] == (16, 16, 3)
        assert s["frames"].shape[0] == task.frames and s["background"].shape == (16, 16, 3)
        if task.kind == "regression":
            assert s["target"].dtype == torch.float32 and s["target"].shape == (task.num_outputs,)
        else:
            assert s["target"].dtype == torch.long and s["target"].ndim == 0
            assert 0 <= int(s["target"]) < max(2, task.num_outputs)
        assert isinstance(s["sensor"], str) and s["source"] == task.name
        assert len(build_task_dataset(task, "val", synthetic=True, num_samples=24, image_size=16)) > 0
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    subsets = [set(budget_indices(100, b, 3, labels)) for b in (0.01, 0.1, 0.33, 1.0)]
    assert all(a <= b for a, b in zip(subsets, subsets[1:])) and len(subsets[-1]) == 100  # nested
    assert sorted(np.bincount(labels[sorted(subsets[1])])) == [1, 2, 3, 5]  # stratified, >= 1 per class
    assert budget_indices(100, 0.1, 3, labels) != budget_indices(100, 0.1, 4, labels)
    small = build_task_dataset("slip", "train", synthetic=True, num_samples=40, image_size=16, budget=0.33, seed=1)
    assert len(small) == sum(np.ceil(0.33 * np.bincount(
        build_task_dataset("slip", "train", synthetic=True, num_samples=40, image_size=16).labels())))
    with pytest.raises(ValueError, match="split 'train' only"):
        build_task_dataset("force", "test", synthetic=True, budget=0.1)
    with pytest.raises(ValueError, match="unknown task 'forse'"):
        get_task("forse")


def test_probe_sets_as_raw_bench_samples(tmp_path):
    sys.path.insert(0, os.path.dirname(__file__))
    import fixtures_probe as FP

    root = str(tmp_path)
    FP.make_feel(root)
    FP.make_tag_probe(root)
    feel = build_task_dataset("feel", "test", root=root)
    s = feel[0]  # can, idx 0: A then B, raw pixels of the files
    for k, finger in enumerate("AB"):
        expected = read_image(os.path.join(root, "feel", "can", "touch_during", f"0_{finger}.png")).permute(1, 2, 0)
        assert torch.equal(s["frames"][k], expected)
    assert int(s["target"]) == 1 and s["sensor"] == "gelsight" and not s["has_background"]
    assert not s["background"].any() and feel.labels() == [1]
    tag = build_task_dataset("tag_material", "test", root=root)
    assert [int(tag[i]["target"]) for i in range(len(tag))] == [11, 2] and tag[0]["frames"].shape[0] == 1
    train, val = (build_task_dataset("tag_material", sp, root=root) for sp in ("train", "val"))
    assert len(train) + len(val) == 7 and not {train[i]["group"] for i in range(len(train))} & \
        {val[i]["group"] for i in range(len(val))}


def test_force_sensor_follows_the_release_present(tree, tmp_path):
    os.symlink(os.path.join(tree, "gelsight-force-estimation"), tmp_path / "gelsight-force-estimation")
    assert build_dataset("force", "test", root=str(tmp_path))[0]["sensor"] == "gelsight_mini"
    assert verify(str(tmp_path), ["force", "slip"], progress=False)[0]["status"] == "ok"
    with pytest.raises(ValueError, match="sensor 'gelsight'"):
        build_dataset("force", "test", root=tree, sensor="gelsight")
