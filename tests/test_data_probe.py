"""The probe datasets of docs/original/probes.md#probe-datasets on generated trees: counts, labels (hardness mapping, -1
skipping), which files each sample reads (Feel A then B, OF id split), the per-task augmentation of
docs/original/data.md#transforms, docs/original/probes.md#protocol, the validation carve."""
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from anytouch.data import DataError, build_dataset
from anytouch.data.device_aug import IDENTITY
from anytouch.data.probe_sets import HARD_MATERIALS, carve_validation, load_feel_split

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_probe as P  # noqa: E402
from fixtures_data import decode_frames  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = str(tmp_path_factory.mktemp("probe_root"))
    P.make_tag_probe(r)
    P.make_feel(r)
    P.make_of(r)
    return r


def _all(ds):
    return [ds[i] for i in range(len(ds))]


def test_tag_material_skips_minus_one_and_reads_the_listed_frames(root):
    for split, rows in (("train", P.TAG_TRAIN), ("test", P.TAG_TEST)):
        ds = build_dataset("tag_material", split, root=root, image_size=16, train=False)
        kept = [(t, label) for _, t, label in rows if label != -1]
        assert len(ds) == len(kept)
        samples = _all(ds)
        assert [decode_frames(s["touch"])[0] for s in samples] == [(t % 32, 1) for t, _ in kept]
        assert [s["label"] for s in samples] == [label for _, label in kept]
        assert {s["sensor"] for s in samples} == {0} and {s["source"] for s in samples} == {"tag_material"}
        assert samples[0]["touch"].shape == (3, 16, 16)


def test_tag_hardness_mapping_and_roughness_files(root):
    hard = _all(build_dataset("tag_hardness", "train", root=root, image_size=8, train=False))
    expected = [int(label in {7, 8, 9, 11, 13}) for _, _, label in P.TAG_TRAIN if label != -1]
    assert HARD_MATERIALS == {7, 8, 9, 11, 13}
    assert [s["label"] for s in hard] == expected and sum(expected) == 4  # 7, 7, 13, 9 -> 1; 3, 0, 19 -> 0
    rough = _all(build_dataset("tag_roughness", "test", root=root, image_size=8, train=False))
    assert [(decode_frames(s["touch"])[0][0], s["label"]) for s in rough] == [(t, y) for _, t, y in P.TAG_ROUGH_TEST]


def test_tag_augmentation_defaults(root):
    train = build_dataset("tag_material", "train", root=root, image_size=8)
    test = build_dataset("tag_material", "test", root=root, image_size=8)
    assert train.transform.train and not test.transform.train
    assert train.transform.jitter == (0.4, 0.4, 0.5, 0.3)
    assert not torch.equal(train[0]["touch_aug"], IDENTITY) and torch.equal(test[0]["touch_aug"], IDENTITY)


def test_tag_bad_line_names_file_and_line(tmp_path):
    P.make_tag_probe(str(tmp_path))
    with open(tmp_path / "TAG" / "test.txt", "a") as f:
        f.write("20190105_000000/0000000012.jpg;4\n")
    with pytest.raises(DataError, match=r"test\.txt:4: bad line"):
        build_dataset("tag_material", "test", root=str(tmp_path))


def test_feel_pairs_a_then_b_split_and_labels(root):
    ds = build_dataset("feel", "train", root=root, image_size=16, train=False)
    rows = [r for r in P.FEEL_ROWS if r[0] in P.FEEL_SPLIT["train"]]
    assert len(ds) == len(rows) == 6
    for s, (name, idx, grip) in zip(_all(ds), rows):
        assert s["touch"].shape == (2, 3, 16, 16)
        assert decode_frames(s["touch"]) == [(idx, 1), (idx, 1 if name == "twin" else 2)]  # A first, then B
        assert s["label"] == grip and s["sensor"] == 0 and s["source"] == "feel"
    test = build_dataset("feel", "test", root=root, image_size=16)
    assert len(test) == 1 and test[0]["label"] == 1 and not test.transform.train


def test_feel_pair_gets_identical_augmentation(root):
    ds = build_dataset("feel", "train", root=root, image_size=16)
    twin = next(i for i, (paths, _) in enumerate(ds.items) if "twin" in paths[0])
    assert ds.transform.train
    for seed in range(5):
        torch.manual_seed(seed)
        pair = ds[twin]["touch"]  # A and B are the same picture: any per-frame draw would make them differ
        assert torch.equal(pair[0], pair[1])


def test_feel_split_file_validation(tmp_path):
    P.make_feel(str(tmp_path), split={"train": ["mug"], "test": [3]})
    with pytest.raises(DataError, match=r"split_3\.npy: key 'test'.*list of object names"):
        build_dataset("feel", "train", root=str(tmp_path))
    np.save(tmp_path / "feel" / "split_5.npy", np.array(["mug", "can"]))
    with pytest.raises(DataError, match="expected a dict"):
        load_feel_split(str(tmp_path / "feel" / "split_5.npy"))
    (tmp_path / "feel" / "split_7.json").write_text('{"train": ["mug", "ball"], "test": ["can"]}')
    assert len(build_dataset("feel", "train", root=str(tmp_path), split_id=7)) == 5  # json used when no .npy


def test_objectfolder_id_split_paths_labels_and_sensor(root):
    of1 = _all(build_dataset("of1", "train", root=root, image_size=8, train=False))
    of2 = build_dataset("of2", "train", root=root, image_size=8)
    expected1 = [(png, P.OF_LABELS[item]) for item, png in P.OF_SPLIT["train"] if int(item) <= 100]
    assert [(decode_frames(s["touch"])[0], s["label"]) for s in of1] == [((p, y), y) for p, y in expected1]
    expected2 = [(png, P.OF_LABELS[item]) for item, png in P.OF_SPLIT["train"] if int(item) > 100]
    assert [(decode_frames(s["touch"])[0], s["label"]) for s in _all(of2)] == [((p, y), y) for p, y in expected2]
    assert {s["sensor"] for s in of1} == {-1} and of2[0]["sensor"] == -1
    assert build_dataset("of2", "train", root=root, image_size=8, sensor=5)[0]["sensor"] == 5
    assert [s["label"] for s in _all(build_dataset("of1", "test", root=root, image_size=8))] == [6]
    # docs/original/data.md#transforms: OF2 trains without augmentation, OF1 with ColorJitter 0.1
    assert not of2.transform.train
    of1_train = build_dataset("of1", "train", root=root, image_size=8)
    assert of1_train.transform.train and of1_train.transform.jitter == (0.1, 0.1, 0.1, 0.1)


def test_objectfolder_label_errors(tmp_path):
    P.make_of(str(tmp_path))
    (tmp_path / "obj2.0" / "label.json").write_text('{"3": 0, "100": 9, "101": 4, "250": 1}')
    with pytest.raises(DataError, match=r"label of item '100' is 9; expected an int in 0\.\.6"):
        build_dataset("of1", "train", root=str(tmp_path))


def test_carve_validation_partition():
    items = list(range(40))
    groups = [i // 4 for i in items]  # 10 groups of 4
    tr = carve_validation(items, "train", 0.3, seed=1, groups=groups)
    va = carve_validation(items, "val", 0.3, seed=1, groups=groups)
    assert sorted(tr + va) == items and not set(tr) & set(va)
    assert len(va) == 12 and {g for g in (i // 4 for i in va)}.isdisjoint({i // 4 for i in tr})
    assert va == carve_validation(items, "val", 0.3, seed=1, groups=groups)
    assert va != carve_validation(items, "val", 0.3, seed=2, groups=groups)
    assert carve_validation(items, "train", 0.0) == items
    with pytest.raises(ValueError, match="val_fraction > 0"):
        carve_validation(items, "val", 0.0)


def test_val_split_of_real_probe_sets(root):
    tr = build_dataset("tag_material", "train", root=root, val_fraction=0.34, val_seed=0, image_size=8)
    va = build_dataset("tag_material", "val", root=root, val_fraction=0.34, val_seed=0, image_size=8)
    full = build_dataset("tag_material", "train", root=root, image_size=8)
    assert sorted(tr.items + va.items) == sorted(full.items) and len(va) > 0 and len(tr) > 0
    folder = lambda it: it[0][0].split(os.sep)[-3]  # noqa: E731
    assert {folder(i) for i in tr.items}.isdisjoint({folder(i) for i in va.items})  # carved by recording
    assert not va.transform.train and tr.transform.train
    feel_va = build_dataset("feel", "val", root=root, val_fraction=0.34)
    assert {p[0].split(os.sep)[-3] for p, _ in feel_va.items} in ({"mug"}, {"ball"}, {"twin"})


def test_path_option_relocates_a_probe_set(root, tmp_path):
    shutil.copytree(os.path.join(root, "feel"), tmp_path / "elsewhere")
    ds = build_dataset("feel", "test", root=root, path=str(tmp_path / "elsewhere"))
    assert len(ds) == 1 and ds.items[0][0][0].startswith(str(tmp_path / "elsewhere"))
    assert build_dataset("feel", "test", root=root, path="feel").items == build_dataset("feel", "test", root=root).items


def test_feel_split_refuses_code_in_pickle(tmp_path):
    """split_<k>.npy is a pickled dict; a crafted one must not run code when loaded."""
    import os as _os

    from anytouch.data import DataError
    from anytouch.data.probe_sets import load_feel_split

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (_os.mkdir, (str(marker),))

    good = tmp_path / "split_3.npy"
    np.save(good, np.array({"train": ["a", "b"], "test": ["c"]}, dtype=object), allow_pickle=True)
    assert load_feel_split(str(good)) == {"train": ["a", "b"], "test": ["c"]}
    bad = tmp_path / "split_4.npy"
    np.save(bad, np.array({"train": [Evil()], "test": []}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="refusing to load global"):
        load_feel_split(str(bad))
    assert not marker.exists()
