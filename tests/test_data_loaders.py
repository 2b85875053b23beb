"""The nine pre-training loaders (docs/original/data.md), the cross-sensor sampler (3.3), the mixed sets, bad data,
skipping.

Every loader runs on a generated tree in the original layout (tests/fixtures_data.py); frames encode
(frame number, tag), so the tests check exactly which frames each sample holds, in which order.
"""
import os
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from anytouch.data.device_aug import IDENTITY
from anytouch.data import (DATASETS, CrossSensorDataset, DataConfig, DataError, SkipErrors, build_dataset,
                           build_pretrain_set, register, skipped_report)
from anytouch.data import build as build_module
from anytouch.data.spec import DatasetSpec
from anytouch.data.skip import format_skipped
from anytouch.tokenizer import tokenize

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_data as F  # noqa: E402

SENSOR = {"tag": 0, "visgel": 0, "cloth": 0, "of_real": 2, "octopi": 3, "tvl": 1, "ssvtp": 1, "ycb_slide": 1}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return F.make_all(str(tmp_path_factory.mktemp("tactile_datasets")))


def build(name, root, **kw):
    opts = dict(image_size=16, vision_size=16, train=False)
    opts.update(kw)
    return build_dataset(name, root=root, **opts)


def frames_of(ds):
    return [F.decode_frames(ds[i]["touch"]) for i in range(len(ds))]


def clip(ts, tag):
    return [(t % 32, tag) for t in ts]


# expected frames (frame number % 32, tag) of every sample, per source and (kind, stage); see fixtures_data.py
EXPECTED = {
    "tag": {
        ("image", 1): [clip([2], 0), clip([3], 0), clip([5], 0), clip([6], 0), clip([1], 1), clip([4], 1)],
        ("video", 1): [clip(range(0, 4), 0), clip(range(2, 6), 0), clip(range(3, 7), 0), clip(range(1, 5), 1)],
        ("image", 2): [clip([3], 0), clip([5], 0), clip([4], 1)],
        ("video", 2): [clip(range(0, 4), 0), clip(range(2, 6), 0), clip(range(1, 5), 1)],
        ("cross_video", 1): [clip(range(0, 3), 0), clip(range(1, 4), 0), clip(range(3, 6), 0),
                             clip(range(4, 7), 0), clip(range(2, 5), 1)],
    },
    "visgel": {
        ("image", 1): [clip([1], 1), clip([3], 1), clip([5], 1), clip([3], 2)],
        ("video", 1): [clip(range(0, 4), 1), clip(range(2, 6), 1), clip(range(0, 4), 2)],
        ("cross_image", 1): [clip([4], 1), clip([2], 2)],  # the cross index file, verbatim paths
        ("cross_video", 1): [clip(range(2, 5), 1), clip(range(0, 3), 2)],
    },
    "cloth": {
        ("image", 1): [clip([4], 1), clip([2], 2), clip([3], 2)],
        ("video", 2): [clip(range(1, 5), 1), clip(range(0, 4), 2)],
        ("cross_video", 1): [clip(range(2, 5), 2)],
    },
    "of_real": {
        ("image", 1): [clip([3], 1), clip([5], 1), clip([4], 2)],
        ("video", 1): [clip(range(0, 4), 1), clip(range(2, 6), 1), clip(range(1, 5), 2)],
        ("image", 2): [clip([5], 1), clip([2], 2)],
        ("video", 2): [clip(range(2, 6), 1)],
        ("cross_image", 1): [clip([5], 2)],
    },
    "octopi": {  # rows x/<folder>/<frame>: cup_1 lives in octopi/processed/, rock_2 in octopi/x/ (bug 6)
        ("image", 1): [clip([4], 1), clip([3], 2)],
        ("video", 1): [clip(range(1, 5), 1), clip(range(0, 4), 2)],
        ("video", 2): [clip(range(1, 5), 1), clip(range(0, 4), 2)],
        ("cross_video", 1): [clip(range(3, 6), 1)],
    },
    "tvl": {  # id 4's clip needs id 1, absent: the original's prefix match would have taken 10-1010.jpg
        ("image", 1): [clip([120], 1), clip([13], 1), clip([4], 1), clip([3], 2)],
        ("video", 1): [clip(range(10, 14), 1), clip(range(0, 4), 2)],
        ("image", 2): [clip([13], 1), clip([3], 2)],
        ("cross_video", 1): [clip(range(11, 14), 1), clip(range(2, 5), 1), clip(range(1, 4), 2)],
    },
    "ssvtp": {
        ("image", 1): [clip([i], 1) for i in (0, 1, 2, 3, 10)],
        ("cross_image", 1): [clip([0], 5), clip([1], 5)],  # the SSVTP/ssvtp_data copy (bug 5)
    },
    "ycb_slide": {
        ("image", 1): [clip([t], 0) for t in range(12)] + [clip([t], 1) for t in range(7)],
        ("video", 1): [clip([t, t + 3, t + 6, t + 9], 0) for t in range(3)],
        ("cross_video", 1): [clip([t, t + 3, t + 6], 0) for t in range(6)] + [clip([0, 3, 6], 1)],
    },
}
CASES = [(name, kind, stage) for name, table in EXPECTED.items() for kind, stage in table]


@pytest.mark.filterwarnings("ignore:tag|visgel|tvl")
@pytest.mark.parametrize("name,kind,stage", CASES)
def test_loader_frames(root, name, kind, stage):
    ds = build(name, root, clip=kind, stage=stage)
    assert frames_of(ds) == EXPECTED[name][(kind, stage)]
    s = ds[0]
    n = {"image": 1, "video": 4, "cross_image": 1, "cross_video": 3}[kind]
    assert s["touch"].shape == ((3, 16, 16) if n == 1 else (n, 3, 16, 16)) and s["touch"].dtype == torch.uint8
    assert torch.equal(s["touch_aug"], IDENTITY)  # train=False: the device only normalises
    assert s["sensor"] == SENSOR[name] and s["source"] == name
    multimodal = stage == 2 and not kind.startswith("cross")
    assert ("text_ids" in s) == multimodal and ("vision" in s) == multimodal


def _tacquad_expected(kind):
    offs = {"image": [0], "video": [-3, -2, -1, 0], "cross_image": [0], "cross_video": [-2, -1, 0]}[kind]
    out = []
    for part, objects in F.TACQUAD_OBJECTS.items():
        for k, (item, sensors, n_img) in enumerate(objects):
            for s in ("gelsight", "digit", "duragel"):
                if s in sensors:
                    n, start, end = sensors[s]
                    first = start + (3 if kind.startswith("cross") else 0)
                    out += [(clip([t + o for o in offs], F.TACQUAD_TAG[s]), int(t / n * n_img), f"{part}{k}")
                            for t in range(first, end + 1) if t + offs[0] >= 0]
    return out


@pytest.mark.parametrize("kind", ["image", "video", "cross_image", "cross_video"])
def test_tacquad_frames_sensors_vision_text(root, kind):
    stage = 1 if kind.startswith("cross") else 2
    ds = build("tacquad", root, clip=kind, stage=stage, pairs=False)
    expected = _tacquad_expected(kind)
    assert len(ds) == len(expected) == {"image": 28, "video": 25, "cross_image": 10, "cross_video": 10}[kind]
    for i, (frames, k_img, text_key) in enumerate(expected):
        s = ds[i]
        assert F.decode_frames(s["touch"]) == frames
        assert s["sensor"] == frames[0][1] == ds.sensor_ids[i]  # GelSight Mini 3, DIGIT 1, DuraGel 4
        if stage == 2:  # camera frame by proportional time, one text per object
            assert s["vision_flag"] == 1 and _decode_vision(s["vision"]) == (k_img, 20 + s["sensor"])
            assert s["text_flag"] == 1
            assert torch.equal(s["text_ids"], tokenize(F.text_of("tacquad", text_key))[0][0])
    assert sorted(set(ds.object_ids.tolist())) == [0, 1, 2]


@pytest.mark.filterwarnings("ignore:tag|visgel|tvl")
@pytest.mark.parametrize("name,texts,visions", [
    ("tag", [0, None, 2], [(3, 9), (5, 9), (4, 9)]),  # row 2 has test_flag 1: text withheld, vision kept
    ("of_real", [7, 8], [(5, 11), (2, 12)]),
    ("octopi", [4, 5], None),
    ("tvl", [5, 6], [(13, 11), None]),
    ("ssvtp", [0, 1, 2, 3, 10], [(i, 11) for i in (0, 1, 2, 3, 10)]),
    ("visgel", [None] * 4, [(1, 9), (3, 9), (5, 9), None]),
    ("cloth", [None] * 3, None),
    ("ycb_slide", [None] * 19, None),
])
def test_stage2_text_and_vision(root, name, texts, visions):
    ds = build(name, root, clip="image", stage=2)
    assert len(ds) == len(texts)
    for i, text_id in enumerate(texts):
        s = ds[i]
        assert s["text_ids"].shape == s["text_mask"].shape == (77,) and s["text_ids"].dtype == torch.long
        assert s["text_flag"] == int(text_id is not None)
        if text_id is None:
            assert int(s["text_ids"].abs().sum() + s["text_mask"].abs().sum()) == 0
        else:
            ids, mask = tokenize(F.text_of(name, text_id))
            assert torch.equal(s["text_ids"], ids[0]) and torch.equal(s["text_mask"], mask[0])
        vis = None if visions is None else visions[i]
        assert s["vision"].shape == (3, 16, 16) and s["vision_flag"] == int(vis is not None)
        if vis is None:
            assert float(s["vision"].abs().sum()) == 0
        else:
            assert _decode_vision(s["vision"]) == vis


def _decode_vision(x):
    assert x.dtype == torch.uint8  # normalised on the device
    rgb = x.float().mean((-2, -1))
    return int(round(float(rgb[0]) / 8)), int(round(float(rgb[1]) / 8))


def test_missing_contact_frames_are_reported(root):
    with pytest.warns(UserWarning, match=r"tag \(image\): 1 x contact frame missing .*0000000009\.jpg"):
        ds = build("tag", root)
    assert ds.stats["contact frame missing"] == 1


def test_index_file_alternatives_and_paths_from_root(root, tmp_path, monkeypatch):
    # stage-1 index missing -> the cross loader's file (verbatim tactile_datasets/... rows) is used (bug 5)
    alt = tmp_path / "tactile_datasets"
    F.make_visgel(str(alt))
    os.remove(alt / "contact_visgel.csv")
    assert frames_of(build("visgel", str(alt))) == [clip([4], 1), clip([2], 2)]
    # a relative root from another working directory: every frame of a clip comes from the root (bug 4)
    monkeypatch.chdir(tmp_path)
    assert frames_of(build("visgel", "tactile_datasets", clip="video")) == [clip(range(1, 5), 1)]  # rec2 t=2 < 3
    # per-dataset folder override
    moved = tmp_path / "elsewhere" / "cloth_copy"
    shutil.copytree(os.path.join(root, "yuan18", "Data_ICRA18"), moved)
    shutil.copy(os.path.join(root, "contact_yuan.csv"), alt / "contact_yuan.csv")
    with pytest.raises(DataError, match="data.paths.cloth"):
        build("cloth", str(alt))
    assert frames_of(build("cloth", str(alt), path=str(moved))) == EXPECTED["cloth"][("image", 1)]


# ---- cross-sensor sampler --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cross(root):
    with pytest.warns(UserWarning, match="1 TacQuad object"):
        return build("tacquad", root, clip="cross_image", pairs=False), CrossSensorDataset(
            build("tacquad", root, clip="cross_image", pairs=False), [build("ssvtp", root, clip="cross_image")])


def test_cross_sampler_draws(cross):
    frames, ds = cross
    obj, sen = frames.object_ids, frames.sensor_ids
    n_tq = len(frames)
    assert len(ds) == n_tq - 1 == 9  # the sponge (gelsight only) is never an anchor
    seen_pos, seen_neg = {}, {}
    for epoch in range(150):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            a, p, n = ds.draw(i)
            assert obj[p] == obj[a] and sen[p] != sen[a]
            assert n >= n_tq or obj[n] != obj[a]
            seen_pos.setdefault(a, set()).add(p)
            seen_neg.setdefault(a, set()).add(n)
    for a in seen_pos:  # the draws cover exactly the allowed sets
        assert seen_pos[a] == {j for j in range(n_tq) if obj[j] == obj[a] and sen[j] != sen[a]}
        assert seen_neg[a] == {j for j in range(n_tq) if obj[j] != obj[a]} | {n_tq, n_tq + 1}


@pytest.mark.filterwarnings("ignore:cross-sensor")
def test_cross_sampler_samples_and_determinism(root, cross):
    frames, ds = cross
    ds.set_epoch(3)
    again = CrossSensorDataset(build("tacquad", root, clip="cross_image", pairs=False),
                               [build("ssvtp", root, clip="cross_image")])
    again.set_epoch(3)
    assert [ds.draw(i) for i in range(len(ds))] == [again.draw(i) for i in range(len(ds))]
    again.set_epoch(4)
    assert [ds.draw(i) for i in range(len(ds))] != [again.draw(i) for i in range(len(ds))]
    for i in range(len(ds)):
        s, (a, p, n) = ds[i], ds.draw(i)
        assert torch.equal(s["anchor"], frames[a]["touch"]) and torch.equal(s["positive"], frames[p]["touch"])
        assert s["anchor_sensor"] == F.decode_frames(s["anchor"])[0][1] != s["positive_sensor"]
        negative = frames[n] if n < len(frames) else ds.pool[n - len(frames)]
        assert torch.equal(s["negative"], negative["touch"]) and s["negative_sensor"] == negative["sensor"]
    video = build("tacquad", root, clip="cross_video")  # pairs=True: TacQuad-only negatives
    s = video[0]
    assert isinstance(video, CrossSensorDataset) and s["anchor"].shape == s["negative"].shape == (3, 3, 16, 16)


class _Frames(torch.utils.data.Dataset):
    def __init__(self, objects, sensors):
        self.object_ids, self.sensor_ids = np.array(objects), np.array(sensors)

    def __len__(self):
        return len(self.object_ids)

    def __getitem__(self, i):
        return {"touch": torch.full((3, 2, 2), i, dtype=torch.uint8), "touch_aug": IDENTITY.clone(),
                "sensor": int(self.sensor_ids[i])}


@pytest.mark.filterwarnings("ignore:cross-sensor")
def test_cross_sampler_single_sensor_objects_do_not_hang():
    with pytest.warns(UserWarning, match="2 TacQuad object"):
        ds = CrossSensorDataset(_Frames([0, 0, 1, 1, 1, 2], [3, 3, 1, 4, 1, 4]))
    assert len(ds) == 3 and all(ds[i]["positive_sensor"] != ds[i]["anchor_sensor"] for i in range(3))
    with pytest.raises(DataError, match="no anchor possible"):
        CrossSensorDataset(_Frames([0, 0, 1], [3, 3, 1]))


def test_cross_sampler_one_object_needs_a_negative_pool():
    """One TacQuad object seen by two sensors: without a pool no negative exists (was numpy's 'high <= 0' on draw)."""
    with pytest.raises(DataError, match="no negative possible"):
        CrossSensorDataset(_Frames([5, 5, 5], [3, 1, 4]))
    with pytest.raises(DataError, match="no negative possible"):
        CrossSensorDataset(_Frames([5, 5], [3, 1]), [_Frames([], [])])  # an empty pool is no pool
    ds = CrossSensorDataset(_Frames([5, 5], [3, 1]), [_Frames([0], [2])])
    assert [ds.draw(i)[2] for i in range(len(ds))] == [2, 2]  # the pool's only entry


# ---- mixed pre-training sets -----------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore")
def test_pretrain_set_repeats_and_table(root, capsys, monkeypatch):
    repeats = dict(DataConfig().repeats)
    repeats.update(tag=2, octopi=3, cloth=0)
    cfg = DataConfig(root=root, repeats=repeats)
    ds = build_pretrain_set(cfg, stage=2, kind="image", image_size=16, vision_size=16)
    single = {"tacquad": 28, "of_real": 2, "visgel": 4, "octopi": 2, "tag": 3, "ssvtp": 5, "tvl": 2, "ycb_slide": 19}
    assert ds.counts == {s: (n, repeats[s]) for s, n in single.items()}
    assert len(ds) == sum(n * repeats[s] for s, n in single.items()) == 28 + 2 + 4 + 6 + 6 + 5 + 2 + 19
    out = capsys.readouterr().out
    assert "stage 2, image: 72 samples" in out and "cloth" not in out
    assert any(line.split() == ["tag", "sample", "3", "2", "6"] for line in out.splitlines())
    batch = next(iter(DataLoader(ds, batch_size=8, shuffle=True)))
    assert batch["touch"].shape == (8, 3, 16, 16) and batch["text_ids"].shape == (8, 77)
    assert batch["vision"].shape == (8, 3, 16, 16) and batch["vision_flag"].dtype == torch.long

    video = build_pretrain_set(cfg, stage=1, kind="video", image_size=16, vision_size=16)
    assert "ssvtp" not in video.counts and len(video) == 25 + 3 + 3 + 4 * 2 + 2 * 3 + 2 + 3
    assert any(line.split()[:2] == ["ssvtp", "-"] for line in capsys.readouterr().out.splitlines())

    monkeypatch.setenv("RANK", "1")
    crossed = build_pretrain_set(cfg, stage=2, kind="cross_video", image_size=16, vision_size=16)
    assert capsys.readouterr().out == ""  # the table is printed on rank 0 only
    assert isinstance(crossed, CrossSensorDataset) and len(crossed) == 9
    assert crossed.pool_sizes == [1, 2, 1, 5, 3, 7]  # of_real visgel octopi tag tvl ycb (no ssvtp, cloth off)

    skipping = build_pretrain_set(DataConfig(root=root, repeats=repeats, on_error="skip"), 1, "image", 16, 16)
    assert isinstance(skipping, SkipErrors) and skipping.counts["tag"] == (6, 2)
    assert len(skipping) == 28 + 3 + 4 + 2 * 3 + 6 * 2 + 5 + 4 + 19
    with pytest.raises(ValueError, match="unknown dataset"):
        build_pretrain_set(DataConfig(root=root, paths={"tga": "TAG"}), 1, "image", 16, 16)
    with pytest.raises(ValueError, match="unknown source"):
        build_pretrain_set(DataConfig(root=root, repeats={"tga": 1}), 1, "image", 16, 16)
    with pytest.raises(ValueError, match="tacquad"):
        build_pretrain_set(DataConfig(root=root, repeats={"tag": 1}), 2, "cross_image", 16, 16)


def test_data_config_keys_checked_at_load():
    """data.paths / data.repeats keys, data.on_error and the stage-1 train.batch_size keys fail at config load."""
    from anytouch.config import ConfigError, load_config
    from anytouch.train.stage1 import Stage1Config
    from anytouch.train.stage2 import Stage2Config

    with pytest.raises(ConfigError, match=r"data\.paths.*'tag_materal'.*did you mean 'data\.paths\.tag_material'.*"
                                          r"valid keys: tacquad.*ycb_slide, tag_material.*of2"):
        load_config(Stage1Config, [], ["data.paths.tag_materal=/x"])
    cfg = load_config(Stage1Config, [], ["data.paths.tag=/a", "data.paths.tag_material=/b", "data.paths.of1=/c"])
    assert cfg.data.paths == {"tag": "/a", "tag_material": "/b", "of1": "/c"}
    with pytest.raises(ConfigError, match=r"data\.repeats.*'tga'"):
        load_config(Stage1Config, [], ["data.repeats.tga=1"])
    with pytest.raises(ConfigError, match=r"data\.on_error.*'skp'.*\['raise', 'skip'\]"):
        load_config(Stage1Config, [], ["data.on_error=skp"])
    with pytest.raises(ConfigError, match="data.on_error"):
        DataConfig(on_error="ignore")
    assert load_config(Stage1Config, [], ["data.on_error=skip"]).data.on_error == "skip"
    with pytest.raises(ConfigError, match=r"train\.batch_size.*'imag'.*valid keys: image, video"):
        load_config(Stage1Config, [], ["train.batch_size.imag=4"])
    with pytest.raises(ConfigError, match="positive integer"):
        load_config(Stage1Config, [], ["train.batch_size.image=0"])
    assert load_config(Stage1Config, [], ["train.batch_size.image=4"]).train.batch_size == {"image": 4, "video": 64}
    assert load_config(Stage2Config, [], ["train.batch_size.video_cross=2"]).train.batch_size["video_cross"] == 2
    with pytest.raises(ConfigError, match="image_cross"):  # stage 2's own loaders are the valid keys there
        load_config(Stage2Config, [], ["train.batch_size.imagecross=2"])


# ---- registry --------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:cross-sensor")
def test_registry_and_synthetic_dispatch(root, monkeypatch):
    assert {"tacquad", "tag", "visgel", "cloth", "tvl", "ssvtp", "ycb_slide", "of_real", "octopi"} <= set(DATASETS)
    with pytest.raises(ValueError, match="already registered"):
        register(DATASETS["tag"])
    with pytest.raises(ValueError, match="unknown dataset 'tga'"):
        build_dataset("tga", root=root)
    with pytest.raises(ValueError, match="synthetic=True"):  # no magic root: the error names the setting
        build_dataset("tag", root="synthetic")
    calls = []
    monkeypatch.setattr(build_module, "build_synthetic", lambda name, split="train", **kw: (
        calls.append((name, split, kw)) or _Frames([0, 0, 1], [3, 1, 4])))
    ds = build_dataset("tacquad", split="train", synthetic=True, clip="cross_image", image_size=8)
    assert calls == [("tacquad", "train", {"synthetic": None, "clip": "cross_image", "image_size": 8})]
    assert isinstance(ds, CrossSensorDataset)
    spec = DatasetSpec("my_probe", "probe", lambda split, root, **kw: ("built", split, root, kw), dirs=("mine",),
                       sensors=(0,))
    monkeypatch.setitem(DATASETS, "my_probe", spec)
    assert build_dataset("my_probe", split="test", root=root, x=1) == ("built", "test", root, {"x": 1})


# ---- bad data --------------------------------------------------------------------------------------------------
def test_bad_roots_and_index_files(tmp_path):
    with pytest.raises(DataError, match="data root not found"):
        build("tag", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"TAG"):
        build("tag", str(tmp_path))
    F.make_tag(str(tmp_path))
    os.remove(tmp_path / "TAG" / "label.txt")
    with pytest.raises(DataError, match=r"label\.txt"):
        build("tag", str(tmp_path))
    with pytest.raises(DataError, match="no data.*contact.json"):
        os.makedirs(tmp_path / "TVL" / "tvl_dataset" / "hct")
        build("tvl", str(tmp_path))


def test_malformed_rows_name_file_and_line(tmp_path):
    F.make_tacquad(str(tmp_path))
    csv = tmp_path / "tacquad" / "contact_outdoor.csv"
    csv.write_text(csv.read_text() + "stone,1,x,,,,\n")
    with pytest.raises(DataError, match=r"contact_outdoor\.csv:2: column 3 \(gelsight_end\) is 'x'"):
        build("tacquad", str(tmp_path), pairs=False)
    csv.write_text("rock,3,8\n")
    with pytest.raises(DataError, match=r"contact_outdoor\.csv:1: malformed row"):
        build("tacquad", str(tmp_path), pairs=False)
    F.make_tag(str(tmp_path))
    (tmp_path / "TAG" / "label.txt").write_text("20190101_000000/0000000002.jpg,1\nno_folder.jpg,1\n")
    with pytest.raises(DataError, match=r"label\.txt:2: entry 'no_folder\.jpg'"):
        build("tag", str(tmp_path))
    (tmp_path / "TAG" / "label.txt").write_text("20190101_000000/frame_2.jpg,1\n")
    F.write_frame(str(tmp_path / "TAG" / "dataset" / "20190101_000000" / "gelsight_frame" / "frame_2.jpg"), 2)
    with pytest.raises(DataError, match=r"label\.txt:1: frame name 'frame_2\.jpg' does not follow"):
        build("tag", str(tmp_path), clip="video")


def test_empty_dataset_and_corrupt_files(tmp_path):
    F.make_cloth(str(tmp_path))
    (tmp_path / "contact_yuan.csv").write_text("9/9/gelsight_frame/0001.png\n")
    with pytest.raises(DataError, match=r"no image samples .*1 x contact frame missing, e\.g\. .*0001\.png"):
        build("cloth", str(tmp_path))
    F.make_of_real(str(tmp_path))
    ds = build("of_real", str(tmp_path), clip="video", stage=2)
    bad = ds.entry(0)["frames"][1]
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[:40])
    with pytest.raises(DataError, match="corrupt or truncated") as e:
        ds[0]
    assert e.value.path == bad
    torch.save(torch.zeros(5), ds.entry(0)["text"])
    with pytest.raises(DataError, match=r"obj_7\.pt"):
        build("of_real", str(tmp_path), clip="image", stage=2)[0]


@pytest.mark.filterwarnings("ignore:tag")
def test_skip_bad_samples_with_workers(tmp_path):
    F.make_tag(str(tmp_path))
    plain = build("tag", str(tmp_path), clip="video")
    ds = build("tag", str(tmp_path), clip="video", on_error="skip")
    broken = [plain.entry(2)["frames"][3], plain.entry(3)["frames"][0]]  # frames used by one clip each
    for p in broken:
        open(p, "wb").write(b"\xff\xd8\xff\xe0 truncated")
    # 2 is broken, so is 3: the next readable sample wraps round to 0
    assert F.decode_frames(ds[2]["touch"]) == F.decode_frames(plain[0]["touch"])
    assert [(r["index"], r["count"]) for r in skipped_report(ds)] == [(2, 1), (3, 1)]
    assert skipped_report(ds) == []  # reset
    for epoch in range(2):
        batches = list(DataLoader(ds, batch_size=2, num_workers=2))
        assert sum(len(b["sensor"]) for b in batches) == len(ds) == 4
        report = skipped_report(ds)  # records written by the worker processes
        assert [(r["index"], r["path"], r["count"]) for r in report] == [(2, broken[0], 1), (3, broken[1], 2)]
        assert all("truncated" in r["reason"] for r in report)
    assert "skipped" in format_skipped(report) and broken[0] in format_skipped(report)
    assert skipped_report(plain) == []


@pytest.mark.filterwarnings("ignore:tag \\(image\\)")
def test_missing_text_files(tmp_path):
    F.make_tag(str(tmp_path))
    os.remove(tmp_path / "text" / "tag_2.pt")
    with pytest.warns(UserWarning, match=r"1 x text file missing .*tag_2\.pt"):
        ds = build("tag", str(tmp_path), stage=2)
    assert [ds[i]["text_flag"] for i in range(len(ds))] == [1, 0, 0]
    shutil.rmtree(tmp_path / "text")
    with pytest.raises(DataError, match="text folder not found"):
        build("tag", str(tmp_path), stage=2)
    assert len(build("tag", str(tmp_path), stage=1)) == 6  # stage 1 needs no text
