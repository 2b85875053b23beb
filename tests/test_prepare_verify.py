"""Preparation from tiny raw inputs (videos written with cv2.VideoWriter, a deepdish-shaped h5 file) read back by
the real loaders, the contact rule, and the verification table on a tree with a missing and a corrupt file."""
import csv
import os
import re
import sys

import numpy as np
import pytest

from anytouch.data import DataError, build_dataset
from anytouch.data import prepare as P
from anytouch.data.extract import octopi_selection, read_video
from anytouch.data.verify import format_rows, main as verify_main, verify

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_probe as FP  # noqa: E402
from fixtures_data import decode_frames  # noqa: E402

LEVELS = [40, 40, 120, 140, 140, 60, 40]  # grey levels of a 7-frame "press" (first frame = unloaded gel)


def _rows(path):
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r]


def test_contact_rules():
    scores = np.array([0.0, 0.5, 10.0, 30.0, 28.0, 6.0, 1.0])
    assert P.select_contact(scores, "all").tolist() == list(range(7))
    assert P.select_contact(scores, "diff").tolist() == [3, 4]  # >= max(2, 15)
    assert P.select_contact(scores, "top").tolist() == [3, 4]  # top 30 % of 7 frames = 2
    assert P.select_contact(np.zeros(5), "diff").tolist() == []  # nothing moves: no contact
    with pytest.raises(ValueError, match="contact rule"):
        P.select_contact(scores, "median")


def test_extract_video_and_tag(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    for folder in ("20190101_000000", "20190102_000000"):
        FP.write_video(str(raw / "dataset" / folder / "gelsight.mp4"), LEVELS)
        FP.write_video(str(raw / "dataset" / folder / "video.mp4"), LEVELS[:5])
    (raw / "label.txt").write_text("20190101_000000/0000000003.jpg,4\n20190102_000000/0000000009.jpg,4\n")
    (raw / "train.txt").write_text("20190101_000000/0000000003.jpg,4\n")
    out = P.main(["tag", "--raw", str(raw), "--root", str(root)])
    assert out["folders"] == 2 and out["frames"] == 2 * (7 + 5) and out["lists"] == 2
    assert out["label_entries"] == 2 and out["label_found"] == 1  # frame 9 does not exist: numbering check
    gel = root / "TAG" / "dataset" / "20190101_000000" / "gelsight_frame"
    assert sorted(os.listdir(gel)) == [f"{t:010d}.jpg" for t in range(7)]
    assert len(os.listdir(gel.parent / "video_frame")) == 5
    with pytest.warns(UserWarning, match="contact frame missing"):
        ds = build_dataset("tag", root=str(root), image_size=16)  # label.txt: the one existing frame
    assert len(ds) == 1 and ds[0]["touch"].shape == (3, 16, 16)
    with pytest.raises(DataError, match="cannot open video"):
        P.extract_video(str(raw / "nope.mp4"), str(tmp_path / "x"), "{:04d}.png")


def test_cloth_follows_the_release_numbering(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    FP.write_video(str(raw / "cloth" / "3" / "1" / "GelSight_video.mp4"), LEVELS)
    out = P.prepare_cloth(str(raw / "cloth"), str(root))
    assert out == {"videos": 1, "frames": 7, "index_rows": 7}
    gel = root / "yuan18" / "Data_ICRA18" / "Data" / "3" / "1" / "gelsight_frame"
    assert sorted(os.listdir(gel)) == [f"{t:04d}.png" for t in range(1, 8)]  # 0001.png = the no-contact frame
    assert _rows(root / "contact_yuan.csv")[0] == ["3/1/gelsight_frame/0001.png"]
    video = build_dataset("cloth", root=str(root), clip="video", image_size=8)
    assert len(video) == 4  # t - 3 >= 1
    assert video.entry(0)["frames"][0].endswith("0001.png")


def _changing_frames(changes, delta=None):
    """4x4 BGR frames; frame i changes ``changes[i - 1]`` pixels of frame i - 1 (by ``delta[i - 1]`` grey levels)."""
    frames = [np.full((4, 4, 3), 100, np.uint8)]
    for i, c in enumerate(changes):
        f = frames[-1].astype(np.int32).reshape(16, 3)
        f[:c] = (f[:c] + (delta[i] if delta else 7)) % 256
        frames.append(f.reshape(4, 4, 3).astype(np.uint8))
    return frames


def test_octopi_selection_is_octopis_rule():
    # 10 frames -> int(0.3 * 10) = 3 kept. Frame 9 changes 16 pixels by one grey level: binarised, it counts most.
    # Frames 2, 3, 5 tie (5 pixels, frame 5 by 200 levels): the stable sort keeps the earlier two. Frame 0: never.
    frames = _changing_frames([2, 5, 5, 1, 5, 0, 3, 3, 16], delta=[7, 7, 7, 7, 200, 7, 7, 7, 1])
    assert octopi_selection(frames).tolist() == [2, 3, 9]
    # scored against the previous frame, not the first: frame 7 moves 3 pixels back to the first frame's values
    back = _changing_frames([4, 4, 0, 0, 0, 0, 0, 0, 0], delta=[5, 251, 0, 0, 0, 0, 0, 0, 0])
    assert np.array_equal(back[2], back[0]) and octopi_selection(back).tolist() == [1, 2, 3]
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8) for _ in range(126)]
    assert len(octopi_selection(video)) == 37  # int(0.3 * 126), not round()


def test_prepare_octopi_writes_octopis_layout(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    levels = [40 + 9 * k for k in range(20)]
    FP.write_video(str(raw / "sponge_3.mov"), levels)
    FP.write_video(str(raw / "sponge_1.mov"), levels[::-1])
    FP.write_video(str(raw / "rock_2.mov"), levels[:10])  # keeps int(0.3 * 10) = 3 < 5 frames: dropped
    out = P.prepare_octopi(str(raw), str(root))
    assert out == {"videos": 3, "dropped": 1, "frames": 12, "index_rows": 12}
    processed = root / "octopi" / "processed"
    assert sorted(os.listdir(processed)) == ["physiclear_sponge_0", "physiclear_sponge_1"]  # k counts per object
    kept = octopi_selection(read_video(str(raw / "sponge_3.mov")))
    assert sorted(os.listdir(processed / "physiclear_sponge_1")) == [f"{i:010d}.jpg" for i in kept]
    rows = [r[0] for r in _rows(root / "contact_octopi.csv")]
    assert rows[:6] == [f"processed/physiclear_sponge_0/{n}" for n in sorted(os.listdir(processed /
                                                                                       "physiclear_sponge_0"))]
    # an original index row <x>/physiclear_<object>_<k>/<frame> resolves to the prepared folder
    (root / "contact_octopi.csv").write_text(f"octopi/physiclear_sponge_1/{kept[0]:010d}.jpg\n")
    assert len(build_dataset("octopi", root=str(root), clip="image", image_size=8)) == 1


def test_octopi_keeps_our_contact_rule_by_name(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    FP.write_video(str(raw / "octopi" / "sponge_1.mov"), LEVELS)
    FP.write_video(str(raw / "octopi" / "rock_2.mov"), LEVELS[::-1])
    out = P.main(["octopi", "--raw", str(raw / "octopi"), "--root", str(root), "--rule", "top"])
    assert out["videos"] == 2 and out["frames"] == 14
    rows = [r[0] for r in _rows(root / "contact_octopi.csv")]
    # top 30 % by difference from the first frame: the two 140 frames of the press; the reversed clip starts at 40
    assert rows == ["processed/rock_2/0000000002.jpg", "processed/rock_2/0000000003.jpg",
                    "processed/sponge_1/0000000003.jpg", "processed/sponge_1/0000000004.jpg"]
    assert len(build_dataset("octopi", root=str(root), clip="video", image_size=8)) == 3  # rock_2 t=2 has no t-3
    with pytest.raises(SystemExit):
        P.main(["octopi", "--raw", str(raw / "octopi"), "--root", str(root), "--mode", "copy"])  # not an option


def test_tag_lists_are_found_in_the_touch_and_go_repository(tmp_path, capsys):
    raw, root = tmp_path / "raw", tmp_path / "root"
    FP.write_video(str(raw / "data" / "dataset" / "20190101_000000" / "gelsight.mp4"), LEVELS)
    with pytest.raises(DataError, match=r"not found in .*Visuo-tactile contrastive learning.*--lists"):
        P.prepare_tag(str(raw), str(root))
    lists = raw / "code" / "Touch-and-Go-main" / "Visuo-tactile contrastive learning" / "dataset"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("20190101_000000/0000000003.jpg,4\n20190101_000000/0000000004.jpg,4")
    (lists / "test.txt").write_text("20190101_000000/0000000005.jpg,4")
    out = P.prepare_tag(str(raw), str(root))
    assert out["lists"] == 2 and (root / "TAG" / "train.txt").read_text().endswith(",4")
    assert len(build_dataset("tag_material", "train", root=str(root), image_size=8)) == 2  # no final newline


def _grasp(name, grip, a, b):
    img = lambda v: np.full((6, 8, 3), v, np.uint8)  # noqa: E731
    g = {"object_name": np.bytes_(name.encode()), "is_gripping": np.bytes_(grip) if isinstance(grip, bytes) else
         np.bool_(grip)}
    for phase in ("before", "during", "after"):
        g[f"gelsightA_{phase}"], g[f"gelsightB_{phase}"] = img(a), img(b)
        g[f"kinectA_rgb_{phase}"] = img(200)
    return g


def test_feel_from_deepdish_h5(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    raw.mkdir()
    FP.write_feel_h5(str(raw / "calandra_corl2017_000.h5"), [_grasp("mug", True, 8, 16), _grasp("can", False, 24, 32)])
    FP.write_feel_h5(str(raw / "calandra_corl2017_002.h5"), [_grasp("mug", b"False", 40, 48)])  # flag as text
    out = P.main(["feel", "--raw", str(raw), "--root", str(root)])
    assert out == {"files": 2, "grasps": 3, "objects": 2}
    assert _rows(root / "feel" / "feel.csv") == [["mug", "0", "1"], ["can", "0", "0"], ["mug", "1", "0"]]
    assert sorted(os.listdir(root / "feel" / "mug")) == [f"{k}_{p}" for k in ("touch", "vision")
                                                         for p in ("after", "before", "during")]
    from PIL import Image
    with Image.open(root / "feel" / "mug" / "touch_during" / "1_B.png") as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (48, 48, 48)
    P.main(["feel-split", "--root", str(root), "--split", "3", "--test-fraction", "0.5"])
    train = build_dataset("feel", "train", root=str(root), image_size=8, train=False)
    test = build_dataset("feel", "test", root=str(root), image_size=8, train=False)
    assert len(train) + len(test) == 3 and min(len(train), len(test)) >= 1
    samples = [d[i] for d in (train, test) for i in range(len(d))]
    pairs = {(tuple(decode_frames(s["touch"])), s["label"]) for s in samples}
    assert (((1, 1), (2, 2)), 1) in pairs and (((5, 5), (6, 6)), 0) in pairs  # A then B (level 8 k -> (k, k))


def test_feel_h5_missing_key(tmp_path):
    g = _grasp("mug", True, 8, 16)
    del g["gelsightB_during"]
    FP.write_feel_h5(str(tmp_path / "calandra_corl2017_001.h5"), [g])
    with pytest.raises(DataError, match=r"record 0 lacks key\(s\) \['gelsightB_during'\]"):
        P.prepare_feel(str(tmp_path), str(tmp_path / "root"), touch_only=True)
    import h5py
    with h5py.File(tmp_path / "pickled.h5", "w") as f:  # what deepdish writes for objects it cannot store natively
        f.create_dataset("data", data=np.frombuffer(b"\x80\x04K\x01.", np.uint8)).attrs["PSEUDOATOM"] = b"object"
    with h5py.File(tmp_path / "pickled.h5", "r") as f, pytest.raises(DataError, match="pickled by deepdish"):
        P.read_deepdish(f)


def test_ycb_and_contact_index(tmp_path):
    raw, root = tmp_path / "raw", tmp_path / "root"
    from fixtures_data import write_frame
    for t in range(10):
        write_frame(str(raw / "real" / "004_sugar_box" / "dataset_0" / "frames" / f"frame_{t:07d}.jpg"), t)
    assert P.main(["ycb_slide", "--raw", str(raw), "--root", str(root), "--mode", "symlink"]) == {"runs": 1,
                                                                                                   "frames": 10}
    assert os.path.islink(root / "YCB-Slide" / "real" / "004_sugar_box" / "dataset_0" / "frames")
    assert len(build_dataset("ycb_slide", root=str(root), clip="video")) == 1  # stride 3: t = 9 only
    seq = root / "visgel" / "images" / "touch" / "seen" / "rec1"
    for t, level in enumerate(LEVELS):
        write_frame(str(seq / f"frame{t:04d}.jpg"), level // 8)  # red channel carries the press
    assert P.main(["index", "--root", str(root), "--name", "visgel"]) == {"sequences": 1, "index_rows": 3}
    assert [r[0] for r in _rows(root / "contact_visgel.csv")] == [f"seen/rec1/frame{t:04d}.jpg" for t in (2, 3, 4)]


def test_verify_reports_missing_and_corrupt_files(tmp_path, capsys):
    root = str(tmp_path)
    FP.make_tag_probe(root)
    FP.make_feel(root)
    os.remove(os.path.join(root, "TAG", "dataset", "20190102_000000", "gelsight_frame", "0000000004.jpg"))
    with open(os.path.join(root, "feel", "ball", "touch_during", "1_B.png"), "r+b") as f:
        f.truncate(40)
    rows = {r["name"]: r for r in verify(root, ["tag_material", "tag_roughness", "feel", "of1"], progress=False)}
    assert rows["tag_material"]["status"] == "problems" and rows["tag_material"]["missing"] == 1
    assert rows["tag_material"]["unreadable"] == 0 and rows["tag_material"]["samples"] == 9
    assert rows["tag_roughness"]["missing"] == 1 and rows["tag_roughness"]["checked"] == 3
    assert rows["feel"]["missing"] == 0 and rows["feel"]["unreadable"] == 1 and "1_B.png" in rows["feel"]["notes"]
    assert rows["of1"]["status"] == "absent" and os.path.join(root, "obj1.0") in rows["of1"]["notes"]
    table = format_rows(list(rows.values()))
    assert "0000000004.jpg" in table and table.splitlines()[0].split()[:3] == ["dataset", "status", "samples"]
    sampled = verify(root, ["feel"], sample=3, progress=False)[0]
    assert sampled["checked"] == 3 and sampled["files"] == 14
    with pytest.raises(SystemExit):
        verify_main(["--root", root, "--names", "feel,tag_material"])
    assert "problems" in capsys.readouterr().out


def test_verify_absent_only_without_the_dataset_folder(tmp_path, capsys):
    """Inside an existing dataset folder a malformed or missing index file is a problem (exit 1), not 'absent'."""
    root = str(tmp_path)
    FP.make_tag_probe(root)
    with open(os.path.join(root, "TAG", "train.txt"), "a") as f:
        f.write("x,notint\n")
    os.remove(os.path.join(root, "TAG", "test_rough.txt"))
    rows = {r["name"]: r for r in verify(root, ["tag_material", "tag_roughness", "tag", "feel"], progress=False)}
    assert rows["tag_material"]["status"] == "problems" and "train.txt" in rows["tag_material"]["notes"]
    assert "'x,notint'" in rows["tag_material"]["notes"]
    assert rows["tag_roughness"]["status"] == "problems" and "test_rough.txt" in rows["tag_roughness"]["notes"]
    assert rows["tag"]["status"] == "problems" and "label.txt" in rows["tag"]["notes"]  # TAG/ without label.txt
    assert rows["feel"]["status"] == "absent" and os.path.join(root, "feel") in rows["feel"]["notes"]
    with pytest.raises(SystemExit) as e:
        verify_main(["--root", root, "--names", "tag_material"])
    assert e.value.code == 1 and "x,notint" in capsys.readouterr().out


def test_verify_missing_or_empty_root_is_an_error(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    with pytest.raises(DataError, match="data root not found: " + re.escape(missing)):
        verify(missing, progress=False)
    with pytest.raises(SystemExit) as e:
        verify_main(["--root", missing])
    assert e.value.code == 2 and missing in capsys.readouterr().err
    rows = verify(str(tmp_path), progress=False)  # an existing root without any dataset: all absent ...
    assert {r["status"] for r in rows} == {"absent"}
    with pytest.raises(SystemExit) as e:  # ... which the CLI reports as a failure (most likely a wrong --root)
        verify_main(["--root", str(tmp_path)])
    assert e.value.code == 1 and "no dataset found" in capsys.readouterr().err


def test_verify_16bit_frames_are_ok(tmp_path):
    """A 16-bit PNG frame decodes to uint8 and goes through the transforms: verify reports it ok, loading works."""
    cv2 = pytest.importorskip("cv2")
    root = str(tmp_path)
    FP.make_feel(root)
    frame = os.path.join(root, "feel", "ball", "touch_during", "1_B.png")
    cv2.imwrite(frame, np.full((32, 32, 3), 40000, np.uint16))
    row = verify(root, ["feel"], progress=False)[0]
    assert row["status"] == "ok" and row["unreadable"] == 0, row
    ds = build_dataset("feel", "train", root=root, image_size=16)
    i = next(k for k, (paths, _) in enumerate(ds.items) if paths[1] == frame)
    assert ds[i]["touch"].shape == (2, 3, 16, 16)
