"""anytouch.load_model / load_encoder: format detection and the public namespace."""
import json
import subprocess
import sys

import pytest
import torch
from checkpoint_fixtures import TINY, clip_config_dict, write_every_format

import anytouch
from anytouch.checkpoint.io import save_safetensors
from anytouch.models import AnyTouchModel, TouchEncoder

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One tiny checkpoint per supported format, all written to disk the way users get them."""
    return write_every_format(tmp_path_factory.mktemp("formats"))


@pytest.mark.parametrize("name, fmt, towers", [
    ("ours_pt", "anytouch_stage2", True),
    ("ours_st", "anytouch_stage2", True),
    ("original_stage1", "original_stage1", False),
    ("original_stage2", "original_stage2", True),
    ("hf_folder", "hf_clip", True),
    ("hf_bin", "hf_clip", True),
    ("open_clip", "open_clip", True),
])
def test_load_model_detects_format(files, name, fmt, towers):
    config = TINY if name.startswith(("original", "hf_bin", "open_clip")) else None
    model, report = anytouch.load_model(files[name], config=config, return_report=True)
    assert isinstance(model, AnyTouchModel) and not model.training
    assert report.format == fmt and model.has_towers == towers
    with torch.no_grad():
        assert model.encode_touch(torch.randn(2, 3, 56, 56), "digit").shape == (2, 32)
        if towers:
            assert model.encode_vision(torch.randn(1, 3, 56, 56)).shape == (1, 32)


@pytest.mark.parametrize("name", ["ours_pt", "original_stage2", "hf_folder", "open_clip"])
def test_load_encoder(files, name):
    config = TINY if name in ("original_stage2", "open_clip") else None
    enc, report = anytouch.load_encoder(files[name], config=config, return_report=True)
    assert isinstance(enc, TouchEncoder) and not enc.training
    full = anytouch.load_model(files[name], config=config)
    img = torch.randn(2, 4, 3, 56, 56)
    with torch.no_grad():
        if name in ("hf_folder", "open_clip"):  # sensor tokens are fresh: compare the part CLIP determines
            assert torch.equal(enc.patch_embed.weight, full.encoder.patch_embed.weight)
            assert torch.equal(enc.proj.weight, full.encoder.proj.weight)
        else:
            assert torch.equal(enc(img, 1), full.encode_touch(img, 1))
    if name == "original_stage2":
        assert "logit_scale" in report.ignored_keys()  # towers are named, not silently dropped


def test_hf_clip_folder_matches_hf_features(files):
    model = anytouch.load_model(files["hf_folder"])  # sizes and heads from the folder's config.json
    hf = transformers.CLIPModel.from_pretrained(files["hf_folder"]).eval()
    px = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        ref = hf.get_image_features(pixel_values=px)
        ref = ref if torch.is_tensor(ref) else ref.pooler_output
        assert torch.allclose(model.encode_vision(px), ref, atol=1e-5)


def test_unrecognised_file(tmp_path):
    save_safetensors({"backbone.stem.weight": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match=r"unrecognised checkpoint.*backbone.stem.weight"):
        anytouch.load_model(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="must hold one of"):
        anytouch.load_model(tmp_path)


def test_config_that_is_not_a_clip_config_json(files, tmp_path):
    (tmp_path / "broken.json").write_text('{"vision_config": {')
    for bad in (files["ours_pt"], tmp_path / "broken.json"):  # a weights file, invalid JSON
        with pytest.raises(ValueError, match="not a CLIP config.json") as info:
            anytouch.load_model(files["original_stage2"], config=bad)
        assert str(bad) in str(info.value)


def test_our_checkpoint_accepts_the_matching_clip_config_json(files, tmp_path):
    enc = anytouch.load_encoder(files["ours_pt"], config=files["hf_folder"])  # config.json of the same towers
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(enc(x, 1), anytouch.load_encoder(files["ours_pt"])(x, 1))
    (tmp_path / "wide").mkdir()
    wide = clip_config_dict()
    wide["text_config"] = dict(wide["text_config"], intermediate_size=128)
    (tmp_path / "wide" / "config.json").write_text(json.dumps(wide))
    with pytest.raises(ValueError, match=r"does not match it: text\.mlp_width is 64 in the checkpoint but 128"):
        anytouch.load_model(files["ours_st"], config=tmp_path / "wide")


def test_import_is_light_and_exports_resolve():
    code = ("import sys, anytouch; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "names = ['load_encoder', 'load_model', 'preprocess_touch', 'preprocess_vision', 'tokenize', "
            "'SENSOR_IDS', 'sensor_id', 'get_arch', 'ArchConfig', '__version__']; "
            "[getattr(anytouch, n) for n in names]; assert set(names) <= set(dir(anytouch)); "
            "assert 'transformers' not in sys.modules; print(anytouch.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        anytouch.nope
