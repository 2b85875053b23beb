"""checkpoint.io: weights-only loading with an explicit allow-list, atomic saves, safetensors."""
import argparse
import os

import pytest
import torch

from anytouch.checkpoint.io import (
    ORIGINAL_ALLOW, UnsafeCheckpointError, atomic_save, read_safetensors, safe_load, safetensors_metadata,
    save_safetensors,
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
