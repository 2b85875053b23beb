"""checkpoint.io: weights-only loading with an explicit allow-list, atomic saves, safetensors."""
import argparse
import os

import pytest
import torch

from anytouch.checkpoint.io import (
    ORIGINAL_ALLOW, CorruptCheckpointError, UnsafeCheckpointError, atomic_save, read_safetensors, safe_load,
    safetensors_metadata, save_safetensors,
)


class Arbitrary:
    def __init__(self):
        self.x = 1


class Malicious:
    """Unpickling this would create the marker directory."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_safe_load_plain_dict(tmp_path):
    obj = {"model": {"w": torch.randn(3, 2)}, "epoch": 4, "config": {"lr": 1e-3, "tags": ["a", None]}}
    torch.save(obj, tmp_path / "c.pt")
    back = safe_load(tmp_path / "c.pt")
    assert back["epoch"] == 4 and back["config"] == obj["config"]
    assert torch.equal(back["model"]["w"], obj["model"]["w"])


def test_arbitrary_object_is_refused(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Arbitrary()}, tmp_path / "c.pt")
    with pytest.raises(UnsafeCheckpointError, match="Arbitrary"):
        safe_load(tmp_path / "c.pt")
    # the allow-list for original files does not open the door to anything else
    with pytest.raises(UnsafeCheckpointError):
        safe_load(tmp_path / "c.pt", allow=ORIGINAL_ALLOW)


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_malicious_reduce_is_not_executed(tmp_path, zipfile_format):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "x": Malicious(str(marker))}, tmp_path / "evil.pt",
               _use_new_zipfile_serialization=zipfile_format)
    with pytest.raises(UnsafeCheckpointError, match="evil.pt"):
        safe_load(tmp_path / "evil.pt", allow=ORIGINAL_ALLOW)
    assert not marker.exists()


def test_namespace_needs_the_original_allow_list(tmp_path):
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=0.1)}, tmp_path / "orig.pth")
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace"):
        safe_load(tmp_path / "orig.pth")
    back = safe_load(tmp_path / "orig.pth", allow=ORIGINAL_ALLOW)
    assert back["args"].lr == 0.1 and torch.equal(back["model"]["w"], torch.ones(2))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        safe_load(tmp_path / "nope.pt")


def test_atomic_save_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"
    atomic_save({"a": torch.arange(3)}, path)
    atomic_save({"a": torch.arange(5)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pt"]


def test_atomic_save_uses_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_save({"a": torch.zeros(1)}, tmp_path / "ckpt.pt")
        st = save_safetensors({"a": torch.zeros(1)}, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644 and st.stat().st_mode & 0o777 == 0o644


def test_atomic_save_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"a": torch.arange(3)}, path)
    with pytest.raises(Exception):
        atomic_save({"a": lambda: 0}, path)  # lambdas cannot be pickled
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_save_safetensors_shared_and_noncontiguous(tmp_path):
    w = torch.randn(4, 6)
    sd = {"emb.weight": w, "head.weight": w, "t": w.t(), "row": w[1], "b": torch.randn(3)}  # tied, views
    path = save_safetensors(sd, tmp_path / "m.safetensors", {"kind": "stage1", "arch": '{"a": 1}'})
    back = read_safetensors(path)
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    assert safetensors_metadata(path) == {"kind": "stage1", "arch": '{"a": 1}'}
    assert torch.equal(safe_load(path)["t"], w.t())  # safe_load reads .safetensors too


def test_save_safetensors_rejects_non_string_metadata(tmp_path):
    with pytest.raises(TypeError, match="version"):
        save_safetensors({"a": torch.zeros(1)}, tmp_path / "m.safetensors", {"version": 1})


def _damaged_files(tmp_path):
    """An empty file, half of a zip checkpoint, half of a legacy one, a text file, a PNG and half a safetensors."""
    torch.save({"model": {"w": torch.randn(64, 64)}}, tmp_path / "good.pt")
    torch.save({"model": {"w": torch.randn(64, 64)}}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    save_safetensors({"w": torch.randn(64)}, tmp_path / "good.safetensors")
    files = {"empty.pt": b"", "text.pt": b"hello", "image.pt": b"\x89PNG\r\n\x1a\n" + bytes(64)}
    for src, name in (("good.pt", "half.pt"), ("legacy.pt", "half_legacy.pt"), ("good.safetensors", "half.safetensors")):
        data = (tmp_path / src).read_bytes()
        files[name] = data[: len(data) // 2]
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return sorted(files)


def test_damaged_file_names_path_and_size(tmp_path):
    for name in _damaged_files(tmp_path):
        path = tmp_path / name
        with pytest.raises(CorruptCheckpointError, match="truncated or not a") as info:
            safe_load(path, allow=ORIGINAL_ALLOW)
        assert isinstance(info.value, ValueError), name
        assert str(path) in str(info.value) and f"({path.stat().st_size} bytes)" in str(info.value), name


def test_cli_reports_damaged_checkpoint_in_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from anytouch.cli import main

    monkeypatch.delenv("ANYTOUCH_TRACEBACK", raising=False)
    Image.new("RGB", (32, 32)).save(tmp_path / "f.png")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert main(["embed", str(tmp_path / "f.png"), "-c", str(tmp_path / "empty.pt"), "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "empty.pt (0 bytes)" in err.splitlines()[0]
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "x": Malicious(str(marker))}, tmp_path / "evil.pt")
    assert main(["embed", str(tmp_path / "f.png"), "-c", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "o.npy")]) == 2
    assert "refusing to load" in capsys.readouterr().err.splitlines()[0] and not marker.exists()


@pytest.fixture
def torch_2_4(monkeypatch):
    """torch 2.4's serialization API: add_safe_globals exists, safe_globals / get_unsafe_globals_in_checkpoint not."""
    monkeypatch.delattr(torch.serialization, "safe_globals")
    monkeypatch.delattr(torch.serialization, "get_unsafe_globals_in_checkpoint")
    before = set(torch.serialization.get_safe_globals())
    yield
    assert set(torch.serialization.get_safe_globals()) == before  # the allow-list was only extended for each load


def test_torch_2_4_fallback_loads_original_layout(tmp_path, torch_2_4):
    from checkpoint_fixtures import make_state_dict, save_original, stage1_layout

    sd = make_state_dict(stage1_layout())
    save_original(tmp_path / "s1.pth", sd)
    back = safe_load(tmp_path / "s1.pth", allow=ORIGINAL_ALLOW)
    assert isinstance(back["args"], argparse.Namespace) and back["args"].batch_size == 64
    assert all(torch.equal(back["model"][k], v) for k, v in sd.items())
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace"):  # still refused without the allow-list
        safe_load(tmp_path / "s1.pth")
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_torch_2_4_fallback_refuses_malicious_pickle(tmp_path, torch_2_4, zipfile_format):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1), "x": Malicious(str(marker))}, tmp_path / "evil.pt",
               _use_new_zipfile_serialization=zipfile_format)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt.*mkdir"):
        safe_load(tmp_path / "evil.pt", allow=ORIGINAL_ALLOW)
    assert not marker.exists()
