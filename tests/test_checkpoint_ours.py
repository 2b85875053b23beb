"""Our checkpoint format: weights-only round trips, safetensors release files, refusals."""
import argparse
import dataclasses
import json

import pytest
import torch
from checkpoint_fixtures import TINY

import anytouch
from anytouch.checkpoint import ours
from anytouch.checkpoint.common import CheckpointMismatchError
from anytouch.checkpoint.io import read_safetensors, safetensors_metadata
from anytouch.models import AnyTouchModel, TouchMAE


def _perturbed(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))  # LoRA B non-zero too
    return model.eval()


def _inputs():
    torch.manual_seed(3)
    return torch.randn(2, 3, 56, 56), torch.randn(2, 4, 3, 56, 56), torch.randn(2, 3, 56, 56)


def _features(model):
    img, clip, px = _inputs()
    with torch.no_grad():
        out = [model.encode_touch(img, [0, -1]), model.encode_touch(clip, 3, pooling="global")]
        if model.has_towers:
            out += [model.encode_vision(px), model.encode_text(["rough", "smooth and cold"])]
    return out


@pytest.fixture(scope="module")
def stage2_model():
    return _perturbed(AnyTouchModel(TINY))


def test_stage2_roundtrip(stage2_model, tmp_path):
    opt = torch.optim.AdamW([p for p in stage2_model.parameters() if p.requires_grad], lr=1e-4)
    cfg = {"lr": 1e-4, "model": {"name": "tiny"}, "data": {"repeats": [1, 2]}}
    path = ours.save_checkpoint(tmp_path / "ckpt.pt", stage2_model, cfg, optimizer=opt.state_dict(), epoch=2, step=40)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no allow-list needed
    assert raw["format"] == "anytouch" and raw["kind"] == "stage2" and raw["config"] == cfg and raw["epoch"] == 2
    assert raw["arch"] == TINY.to_dict()
    loaded, report = anytouch.load_model(path, return_report=True)
    assert not loaded.training and report.format == "anytouch_stage2" and not report.ignored
    assert loaded.vision.lora_rank == TINY.lora_rank
    for a, b in zip(_features(stage2_model), _features(loaded)):
        assert torch.equal(a, b)
    enc = anytouch.load_encoder(path)
    img = _inputs()[0]
    with torch.no_grad():
        assert torch.equal(enc(img, [0, -1]), stage2_model.encode_touch(img, [0, -1]))


def test_loaded_model_does_not_alias_the_file(stage2_model, tmp_path):
    path = ours.save_checkpoint(tmp_path / "ckpt.pt", stage2_model)
    model = anytouch.load_model(path)
    before = _features(model)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # rewrite the file in place (same inode, same size)
        f.write(bytes(size))
    for a, b in zip(before, _features(model)):
        assert torch.equal(a, b)


def test_merged_vision_roundtrip(stage2_model, tmp_path):
    merged = AnyTouchModel(TINY, lora=False)
    sd = dict(stage2_model.state_dict())
    for m_name, m in stage2_model.vision.named_modules():
        if hasattr(m, "lora_A"):
            pre = f"vision.{m_name}."
            sd[pre + "weight"] = m.weight + (m.lora_B @ m.lora_A) * m.scaling
            del sd[pre + "lora_A"], sd[pre + "lora_B"]
    merged.load_state_dict(sd, strict=True)
    path = ours.save_checkpoint(tmp_path / "merged.pt", merged.eval())
    loaded = anytouch.load_model(path)
    assert loaded.vision.lora_rank == 0
    px = _inputs()[2]
    with torch.no_grad():
        assert torch.equal(loaded.encode_vision(px), merged.encode_vision(px))
        assert torch.allclose(loaded.encode_vision(px), stage2_model.encode_vision(px), atol=1e-5)


def test_stage1_roundtrip_is_towerless(tmp_path):
    mae = _perturbed(TouchMAE(TINY), 1)
    path = ours.save_checkpoint(tmp_path / "s1.pth", mae, None, epoch=0)
    assert torch.load(path, weights_only=True)["kind"] == "stage1"
    model = anytouch.load_model(path)
    assert not model.has_towers
    with pytest.raises(RuntimeError, match="stage-1"):
        model.encode_vision(torch.zeros(1, 3, 56, 56))
    img, clip, _ = _inputs()
    noise = torch.rand(2, 16)
    with torch.no_grad():
        assert torch.equal(model.encode_touch(img, 2), mae.encoder(img, 2))
        a, b = model.mae_loss(clip, 1, noise=noise), mae(clip, 1, noise=noise)
        assert torch.equal(a["loss"], b["loss"])
    # a towerless AnyTouchModel is saved as stage 1 too
    again = ours.save_checkpoint(tmp_path / "again.pth", model)
    assert torch.load(again, weights_only=True)["kind"] == "stage1"


def test_safetensors_export_roundtrip(stage2_model, tmp_path):
    opt = torch.optim.SGD(stage2_model.parameters(), lr=0.1)
    path = ours.save_checkpoint(tmp_path / "ckpt.pt", stage2_model, {"lr": 0.1}, optimizer=opt.state_dict())
    st = ours.export_safetensors(path, tmp_path / "anytouch-tiny.safetensors")
    meta = safetensors_metadata(st)
    assert meta["format"] == "anytouch" and meta["kind"] == "stage2" and json.loads(meta["arch"]) == TINY.to_dict()
    saved = torch.load(path, weights_only=True)["provenance"]  # versions, commit and time travel with the weights
    assert saved["anytouch"] == anytouch.__version__ and saved["torch"] == torch.__version__ and saved["created"]
    assert json.loads(meta["provenance"]) == saved == ours.load_checkpoint(st)["provenance"]
    assert set(read_safetensors(st)) == set(stage2_model.state_dict())  # weights only, no optimizer state
    loaded = anytouch.load_model(st)
    for a, b in zip(_features(stage2_model), _features(loaded)):
        assert torch.equal(a, b)


def test_namespace_cannot_be_saved(stage2_model, tmp_path):
    with pytest.raises(TypeError, match=r"ckpt\['args'\].*Namespace"):
        ours.save_checkpoint(tmp_path / "c.pt", stage2_model, args=argparse.Namespace(lr=1))
    with pytest.raises(TypeError, match=r"ckpt\['config'\]\['out'\].*PosixPath"):
        ours.save_checkpoint(tmp_path / "c.pt", stage2_model, {"out": tmp_path})
    with pytest.raises(TypeError, match=r"ckpt\['config'\]\['torch'\].*TorchVersion"):  # a str subclass
        ours.save_checkpoint(tmp_path / "c.pt", stage2_model, {"torch": torch.__version__})
    assert not (tmp_path / "c.pt").exists()


def test_config_for_our_files_must_match_the_stored_arch(stage2_model, tmp_path):
    path = ours.save_checkpoint(tmp_path / "c.pt", stage2_model)
    st = ours.export_safetensors(path, tmp_path / "c.safetensors")
    ref = anytouch.load_encoder(path)
    x = torch.randn(2, 3, 56, 56)
    for ck in (path, st):  # a matching preset, ArchConfig or dict is accepted and changes nothing
        for config in ("tiny", TINY, TINY.to_dict()):
            torch.testing.assert_close(anytouch.load_encoder(ck, config=config)(x, 0), ref(x, 0), rtol=0, atol=0)
        assert anytouch.load_model(ck, config="tiny").has_towers
    with pytest.raises(CheckpointMismatchError, match=r"carries its own architecture.*projection_dim is 32 .* 128"):
        anytouch.load_model(path, config="small")
    other = dataclasses.replace(TINY, touch=dataclasses.replace(TINY.touch, heads=4))
    with pytest.raises(CheckpointMismatchError, match=r"touch\.heads is 2 in the checkpoint but 4"):
        anytouch.load_encoder(st, config=other)


def test_wrong_arch_in_checkpoint_names_key_and_shapes(stage2_model, tmp_path):
    ckpt = ours.make_checkpoint(stage2_model)
    arch = dict(ckpt["arch"])
    arch["touch"] = dict(arch["touch"], image_size=112)
    ckpt["arch"] = arch
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError, match=r"'touch.decoder_pos_embed' has shape \(1, 17, 32\).*\(1, 65, 32\); the weights do not match"):
        anytouch.load_model(tmp_path / "bad.pt")


def test_unsupported_version_refused(stage2_model, tmp_path):
    ckpt = ours.make_checkpoint(stage2_model)
    ckpt["version"] = 99
    torch.save(ckpt, tmp_path / "v99.pt")
    with pytest.raises(ValueError, match="version 99"):
        ours.load_checkpoint(tmp_path / "v99.pt")
