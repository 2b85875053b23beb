"""Packed store: write from the raw loaders, read back the same samples, detect corruption by checksum."""
import os
import shutil
import warnings

import pytest
import torch

from anytouch.data import build_dataset
from anytouch.data.device_aug import IDENTITY, apply_touch_aug, load_touch_uint8
from anytouch.data.packed import PackedDataset, PackedStoreError, PackWriter, pack_dataset, verify_packed
from anytouch.engine.rng import seeded
from anytouch.preprocess import IMAGENET_STD
from fixtures_data import decode_frames, make_tag

LEVEL = 1 / 255 / min(IMAGENET_STD)


@pytest.fixture(scope="module")
def tag_store(tmp_path_factory):
    root = make_tag(str(tmp_path_factory.mktemp("raw")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture has one index line with a missing frame, on purpose
        raw = {k: build_dataset("tag", root=root, clip=k, image_size=16, train=False) for k in ("image", "video")}
    store = str(tmp_path_factory.mktemp("packed"))
    pack_dataset(raw, store, 16, frames_per_shard=5)  # several shards, the last one partial
    return raw, store


@pytest.mark.parametrize("kind", ["image", "video"])
def test_packed_equals_raw(tag_store, kind):
    raw, store = tag_store
    ds = PackedDataset(store, kind, train=False)
    assert len(ds) == len(raw[kind]) and ds.source == "tag"
    for i in range(len(ds)):
        s, r = ds[i], raw[kind][i]
        e = raw[kind].entry(i)
        assert s["touch"].dtype == torch.uint8 and s["sensor"] == r["sensor"] and s["object"] == e["object"]
        assert torch.equal(s["touch"], load_touch_uint8(e["frames"], 16).squeeze(0))
        if kind == "image":  # the same uint8 resize as the raw loader: the same sample
            assert torch.equal(s["touch"], r["touch"]) and torch.equal(s["touch_aug"], r["touch_aug"])
        x = apply_touch_aug(s["touch"][None], s["touch_aug"][None])[0]
        y = apply_touch_aug(r["touch"][None], r["touch_aug"][None])[0]
        # stage-1 raw clips skip antialiasing (the original's choice), packed frames do not; on these flat
        # fixture frames the two filters agree to one level
        assert (x - y).abs().max() <= LEVEL + 1e-5
        assert decode_frames(x) == decode_frames(r["touch"])


def test_frames_stored_once_and_verified(tag_store):
    raw, store = tag_store
    index = verify_packed(store)
    frames = {p for ds in raw.values() for i in range(len(ds)) for p in ds.entry(i)["frames"]}
    assert index["frames"] == len(frames) and len(index["shards"]) == -(-len(frames) // 5)


def test_training_params_follow_the_seed(tag_store):
    _, store = tag_store
    ds = PackedDataset(store, "video", train=True)
    with seeded(7):
        a = ds[1]["touch_aug"]
    with seeded(7):
        b = ds[1]["touch_aug"]
    assert torch.equal(a, b) and not torch.equal(a, IDENTITY)


def test_corrupt_and_truncated_shards_are_named(tmp_path):
    w = PackWriter(str(tmp_path), 8, "synthetic", frames_per_shard=2)
    ids = [w.add_frame(torch.full((3, 8, 8), k, dtype=torch.uint8)) for k in range(3)]
    w.add_sample("image", [ids[2]], sensor=1)
    w.close()
    assert torch.equal(PackedDataset(str(tmp_path), "image")[0]["touch"], torch.full((3, 8, 8), 2, dtype=torch.uint8))
    shard = tmp_path / "shard-00000.u8"
    data = bytearray(shard.read_bytes())
    data[5] ^= 1
    shard.write_bytes(bytes(data))
    verify_packed(str(tmp_path), checksums=False)  # sizes still fine
    with pytest.raises(PackedStoreError, match="checksum mismatch in shard-00000.u8") as e:
        verify_packed(str(tmp_path))
    assert e.value.path == str(shard)
    os.truncate(tmp_path / "shard-00001.u8", 10)
    with pytest.raises(PackedStoreError, match="shard-00001.u8 has 10 bytes, expected 192"):
        verify_packed(str(tmp_path), checksums=False)


def test_bad_store_and_writer_inputs(tmp_path):
    with pytest.raises(PackedStoreError, match="index.json is missing"):
        PackedDataset(str(tmp_path))
    w = PackWriter(str(tmp_path), 8, "synthetic")
    with pytest.raises(ValueError, match=r"uint8 \(3, 8, 8\)"):
        w.add_frame(torch.zeros(3, 9, 8, dtype=torch.uint8))
    w.add_frame(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="not among the 1 written"):
        w.add_sample("image", [3], sensor=0)
    w.add_sample("image", [0], sensor=0)
    w.close()
    with pytest.raises(FileExistsError):
        PackWriter(str(tmp_path), 8, "synthetic")
    with pytest.raises(PackedStoreError, match="no 'video' samples"):
        PackedDataset(str(tmp_path), "video")
    os.remove(tmp_path / "table-image.npz")
    with pytest.raises(PackedStoreError, match="table-image.npz listed in index.json is missing"):
        verify_packed(str(tmp_path))


def test_loader_order_and_params_independent_of_workers_and_ranks(tag_store):
    """Through the training loaders' sampler and per-sample seeding: same batches with 0 or 2 workers, and the two
    ranks of a 2-rank job read disjoint halves."""
    from anytouch.engine.data import build_loader
    from anytouch.engine.dist import DistEnv

    _, store = tag_store
    ds = PackedDataset(store, "video", train=True)

    def batches(workers, rank=0, world=1):
        loader = build_loader(ds, 2, seed=5, env=DistEnv(rank=rank, world_size=world), num_workers=workers)
        loader.sampler.set_epoch(1)
        return list(loader)

    a, b = batches(0), batches(2)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert torch.equal(x["touch"], y["touch"]) and torch.equal(x["touch_aug"], y["touch_aug"])
    halves = [torch.cat([x["touch"] for x in batches(0, r, 2)]) for r in (0, 1)]
    assert not any(torch.equal(p, q) for p in halves[0] for q in halves[1])


def test_store_packed_config_pack_and_verify_commands(tmp_path, capsys):
    """anytouch pack writes a store per source, data.store=packed reads it through build_pretrain_set with the raw
    samples, anytouch verify --packed checks it and names a corrupt shard."""
    from anytouch.cli.main import main
    from anytouch.data import DataConfig, PRETRAIN_SOURCES, build_pretrain_set

    root = make_tag(str(tmp_path / "raw"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["pack", "--root", root, "--size", "16", "--names", "tag", "--kinds", "image,video"]) == 0
        assert main(["verify", "--packed", os.path.join(root, "packed")]) == 0
        only_tag = {s: int(s == "tag") for s in PRETRAIN_SOURCES}
        raw = build_pretrain_set(DataConfig(root=root, repeats=only_tag), 1, "image", 16, 16)
        packed = build_pretrain_set(DataConfig(root=root, repeats=only_tag, store="packed"), 1, "image", 16, 16)
    assert len(packed) == len(raw) > 0
    with seeded(3):
        a = packed[1]
    with seeded(3):
        b = raw[1]
    assert torch.equal(a["touch"], b["touch"]) and torch.equal(a["touch_aug"], b["touch_aug"])  # same draws too
    assert "ok" in capsys.readouterr().out
    with pytest.raises(ValueError, match="re-pack with anytouch pack --size 32"):
        build_pretrain_set(DataConfig(root=root, repeats=only_tag, store="packed"), 1, "image", 32, 32)
    with pytest.raises(ValueError, match="re-pack with anytouch pack --vision-size 32"):
        build_pretrain_set(DataConfig(root=root, repeats=only_tag, store="packed"), 2, "image", 16, 32)
    shard = os.path.join(root, "packed", "tag", "shard-00000.u8")
    with open(shard, "r+b") as f:
        f.write(b"\xff\x00")
    with pytest.raises(SystemExit):
        main(["verify", "--packed", os.path.join(root, "packed")])
    assert "checksum mismatch in shard-00000.u8" in capsys.readouterr().err


@pytest.fixture(scope="module")
def stage2_tree(tmp_path_factory):
    """A synthetic TAG tree (camera images, text, some samples without text) packed with stage 2."""
    from anytouch.data.packed import pack_root
    from anytouch.data.synthetic_tree import write_synthetic_tree

    root = str(tmp_path_factory.mktemp("tree"))
    write_synthetic_tree(root, names=["tag"], sequences=2, frames=6, size=24, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pack_root(root, os.path.join(root, "packed"), 16, ["tag"], ("image", "video"), log=lambda _: None,
                  vision_size=20)
    return root


def _stage2_sets(root, kind, store, train=False):
    from anytouch.data import DataConfig, PRETRAIN_SOURCES, build_pretrain_set

    cfg = DataConfig(root=root, repeats={s: int(s == "tag") for s in PRETRAIN_SOURCES}, store=store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_pretrain_set(cfg, 2, kind, 16, 20)
    if not train:  # build_pretrain_set trains; the evaluation view of the same sources compares exactly
        for part in ds.datasets:
            if isinstance(part, PackedDataset):
                part.train = False
                part.vision_tf.augment = None
                part.vision_tf.train = False
            else:
                part.touch_tf.train = part.vision_tf.train = False
                part.vision_tf.augment = None
    return ds


@pytest.mark.parametrize("kind", ["image", "video"])
def test_stage2_packed_equals_raw(stage2_tree, kind):
    raw, packed = _stage2_sets(stage2_tree, kind, "raw"), _stage2_sets(stage2_tree, kind, "packed")
    assert len(raw) == len(packed) > 0
    flags = set()
    for i in range(len(raw)):
        r, p = raw[i], packed[i]
        assert set(r) <= set(p) and set(p) - set(r) == {"object", "label"}
        for key, value in r.items():
            if isinstance(value, torch.Tensor):
                assert p[key].dtype == value.dtype and p[key].shape == value.shape, key
            else:
                assert type(p[key]) is type(value), key
        # stage-2 clips are antialiased in the raw loader too, so the touch frames are the same bytes
        assert torch.equal(p["touch"], r["touch"]) and torch.equal(p["touch_aug"], r["touch_aug"])
        # the stored image is the raw path's resize before its crop, rounded the same way: the same bytes
        assert torch.equal(p["vision"], r["vision"])
        for key in ("vision_flag", "text_flag", "sensor", "source"):
            assert p[key] == r[key], key
        assert torch.equal(p["text_ids"], r["text_ids"]) and torch.equal(p["text_mask"], r["text_mask"])
        flags.add((r["vision_flag"], r["text_flag"]))
    assert (1, 1) in flags and any(t == 0 for _, t in flags)  # samples with and without text were compared


def test_stage2_training_view_draws_like_raw(stage2_tree):
    """Under one seed the packed and raw training samples draw the same touch parameters and the same vision
    rotation and flip; rotating the stored image instead of the original moves only the nearest-neighbour grid."""
    raw, packed = _stage2_sets(stage2_tree, "image", "raw", True), _stage2_sets(stage2_tree, "image", "packed", True)
    with seeded(11):
        p = packed[0]
    with seeded(11):
        r = raw[0]
    assert torch.equal(p["touch_aug"], r["touch_aug"]) and p["vision"].shape == r["vision"].shape
    with seeded(11):
        again = packed[0]
    assert torch.equal(again["vision"], p["vision"])
    eval_view = _stage2_sets(stage2_tree, "image", "packed")[0]["vision"]
    assert not torch.equal(p["vision"], eval_view)  # the augmentation is applied on read


def test_stage2_corrupt_vision_is_named_and_touch_only_store_refused(stage2_tree, tmp_path):
    store = os.path.join(stage2_tree, "packed", "tag")
    index = verify_packed(store)
    assert index["vision"]["bytes"] > 0 and index["tables"]["stage2-video"]["stage2"]
    corrupt = tmp_path / "tag"
    shutil.copytree(store, corrupt)
    vision = corrupt / "vision.u8"
    data = bytearray(vision.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vision.write_bytes(bytes(data))
    with pytest.raises(PackedStoreError, match="checksum mismatch in vision.u8") as e:
        verify_packed(str(corrupt))
    assert e.value.path == str(vision)
    os.truncate(vision, 7)
    with pytest.raises(PackedStoreError, match="vision.u8 has 7 bytes"):
        verify_packed(str(corrupt), checksums=False)
    w = PackWriter(str(tmp_path / "touch_only"), 8, "tag")
    w.add_sample("image", [w.add_frame(torch.zeros(3, 8, 8, dtype=torch.uint8))], sensor=0)
    w.close()
    with pytest.raises(PackedStoreError, match="re-pack it with anytouch pack --stage 2"):
        PackedDataset(str(tmp_path / "touch_only"), "image", stage=2)
