"""Hub-layout folders and hf-hub: ids (anytouch.checkpoint.hub): convert --to hub, save_pretrained /
from_pretrained, loading by path and from a Hugging Face cache laid out by the test (never the network)."""
import json

import pytest
import torch
from anytouch2_fixtures import clip_config, released_file, tiny_encoder
from checkpoint_fixtures import TINY, make_state_dict, save_original, stage1_layout, stage2_layout

import anytouch
from anytouch.checkpoint import hub, read_checkpoint
from anytouch.checkpoint.card import model_card
from anytouch.cli.main import main
from anytouch.models import AnyTouchModel, TouchEncoder
from anytouch.models.anytouch2 import AnyTouch2Encoder
from anytouch.preprocess import BACKGROUND_OFFSET, CLIP_MEAN, CLIP_STD

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("orig")
    return {"s2": save_original(root / "stage2.pth", make_state_dict(stage2_layout(), seed=1)),
            "s1": save_original(root / "stage1.pth", make_state_dict(stage1_layout(), seed=2))}


def _features(encoder, seed=0):
    g = torch.Generator().manual_seed(seed)
    img, clip = torch.randn(3, 3, 56, 56, generator=g), torch.randn(2, 3, 3, 56, 56, generator=g)
    with torch.no_grad():
        return [encoder(img, s) for s in (0, 1, 3, -1)] + [encoder(clip, "digit")]


def _assert_same_features(a, b):
    for x, y in zip(_features(a), _features(b)):
        assert torch.equal(x, y)


def cache_repo(cache, repo_id, folder, rev=REV):
    """Lay out ``folder`` as the cached snapshot of ``repo_id`` the way huggingface_hub does: blobs named by
    content, snapshot entries symlinked to them, refs/main naming the commit."""
    base = cache / ("models--" + repo_id.replace("/", "--"))
    snap = base / "snapshots" / rev
    (base / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        blob = base / "blobs" / hub.sha256_file(f)
        blob.write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(blob)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(rev)
    return snap


def test_convert_original_to_hub_loads_by_path_and_by_id(originals, tmp_path, monkeypatch, capsys):
    out = tmp_path / "anytouch-tiny"
    assert main(["convert", str(originals["s2"]), str(out), "--to", "hub", "--config", "tiny"]) == 0
    assert "hub folder" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "stage2" and cfg["provenance"]["source_format"] == "original_stage2"
    assert cfg["provenance"]["source_sha256"] == hub.sha256_file(originals["s2"])
    assert cfg["provenance"]["anytouch"] == anytouch.__version__
    assert cfg["input"] == {"image_size": 56, "frames": 3, "mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225], "channels": "RGB"}

    source = anytouch.load_encoder(originals["s2"], config=TINY)
    assert read_checkpoint(out).format == "hub"
    _assert_same_features(source, anytouch.load_encoder(out))
    _assert_same_features(source, anytouch.load_encoder(out / "model.safetensors"))

    cache = tmp_path / "hf-cache"
    cache_repo(cache, "lab/anytouch-tiny", out)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    by_id = anytouch.load_encoder("hf-hub:lab/anytouch-tiny")
    _assert_same_features(source, by_id)
    _assert_same_features(source, anytouch.load_encoder(f"hf-hub:lab/anytouch-tiny@{REV}"))
    model = anytouch.from_pretrained("hf-hub:lab/anytouch-tiny", local_files_only=True)
    assert isinstance(model, AnyTouchModel) and model.has_towers and not model.training
    # the whole model, towers included, survives: compare with the source's model
    ref = anytouch.load_model(originals["s2"], config=TINY)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))
    # the CLI takes the id too
    assert main(["convert", "hf-hub:lab/anytouch-tiny", str(tmp_path / "again"), "--to", "hub"]) == 0
    again = json.loads((tmp_path / "again" / "config.json").read_text())["provenance"]
    assert again["source"] == "hf-hub:lab/anytouch-tiny" and again["source_format"] == "hub"
    assert again["source_sha256"] == hub.sha256_file(out / "model.safetensors")


def test_offline_and_not_cached_names_the_id(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match=r"hf-hub:lab/missing: not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        anytouch.load_encoder("hf-hub:lab/missing")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    with pytest.raises(FileNotFoundError, match=r"hf-hub:lab/missing: .*local_files_only=True"):
        anytouch.from_pretrained("hf-hub:lab/missing", local_files_only=True)
    with pytest.raises(ValueError, match="hf-hub:ORG/NAME"):
        anytouch.load_encoder("hf-hub:no-slash")


def test_stage1_and_encoder_round_trip_through_save_pretrained(originals, tmp_path):
    stage1 = anytouch.load_model(originals["s1"], config=TINY)
    hub.save_pretrained(stage1, tmp_path / "s1")
    back = anytouch.from_pretrained(tmp_path / "s1")
    assert not back.has_towers
    assert all(torch.equal(a, b) for a, b in zip(stage1.state_dict().values(), back.state_dict().values()))

    torch.manual_seed(0)
    enc = TouchEncoder(TINY).eval()
    anytouch.save_pretrained(enc, tmp_path / "enc", adapted_slots=[5])
    loaded = anytouch.from_pretrained(tmp_path / "enc")
    assert isinstance(loaded, TouchEncoder)
    _assert_same_features(enc, loaded)
    with pytest.raises(ValueError, match="holds only a touch encoder, not a 'model'.*load_encoder"):
        anytouch.load_model(tmp_path / "enc")
    from anytouch.adapt import recorded_slots
    assert recorded_slots(tmp_path / "enc") == [5]
    with pytest.raises(TypeError, match="cannot save a Linear"):
        anytouch.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "bad")


def test_the_card_is_generated_from_the_config(originals, tmp_path):
    rows = [{"task": "tag_material", "protocol": "official", "rule": "paper", "rule_label": "best epoch on test",
             "accuracy": 80.25, "epoch": 7, "lr": 1e-3, "weight_decay": 0.0, "readme": 80.82,
             "checkpoint": "x.pth", "date": "2026-12-01"}]
    (tmp_path / "results.json").write_text(json.dumps({"rows": rows}))
    out = tmp_path / "hub"
    assert main(["convert", str(originals["s1"]), str(out), "--to", "hub", "--config", "tiny", "--probe-results",
                 str(tmp_path / "results.json")]) == 0
    cfg = json.loads((out / "config.json").read_text())
    card = (out / "README.md").read_text()
    assert card == model_card(cfg)  # the card is the function of the config, nothing hand-written
    assert str(originals["s1"]) in card and cfg["provenance"]["source_sha256"] in card
    assert "| `digit` | 1 |" in card and "| `universal` | -1 |" in card and "56x56" in card
    assert "80.25" in card and "tag_material" in card and "licence" in card.lower()
    # another config gives another card: nothing in it is fixed per model
    cfg2 = {**cfg, "kind": "encoder", "adapted_slots": [6], "input": {**cfg["input"], "image_size": 224}}
    cfg2.pop("probe")
    card2 = model_card(cfg2)
    assert "224x224" in card2 and "(slot 6)" in card2 and "touch encoder alone" in card2 and "80.25" not in card2


def test_bad_folders_and_arguments(originals, tmp_path):
    out = hub.save_pretrained(anytouch.load_model(originals["s1"], config=TINY), tmp_path / "h")
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "anytouch_hub_version": 99}))
    with pytest.raises(ValueError, match="anytouch_hub_version 99 is not supported"):
        anytouch.load_encoder(out)
    (out / "config.json").write_text(json.dumps({**cfg, "kind": "stage9"}))
    with pytest.raises(ValueError, match="kind 'stage9'"):
        anytouch.load_encoder(out)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: expected probe results with a non-empty 'rows'"):
        hub.save_pretrained(anytouch.load_model(originals["s1"], config=TINY), tmp_path / "h2", probe=tmp_path / "bad.json")
    (tmp_path / "file").write_text("x")
    assert main(["convert", str(originals["s1"]), str(tmp_path / "file"), "--to", "hub", "--config", "tiny"]) == 2
    assert main(["convert", str(originals["s1"]), str(tmp_path / "o.pth"), "--probe-results", "r.json", "--config", "tiny"]) == 2


def test_convert_keeps_the_adapted_slots(tmp_path):
    from anytouch.adapt import recorded_slots
    from anytouch.checkpoint import save_checkpoint

    torch.manual_seed(0)
    src = save_checkpoint(tmp_path / "adapted.pt", AnyTouchModel(TINY, towers=False), {"adapt": {"slots": [5, 6]}})
    assert main(["convert", str(src), str(tmp_path / "hub"), "--to", "hub"]) == 0
    assert recorded_slots(tmp_path / "hub") == [5, 6]
    assert "| (slot 5) | 5 |" in (tmp_path / "hub" / "README.md").read_text()


# -- AnyTouch 2 encoders as hub folders ----------------------------------------------------------------------------
def _at2_features(encoder):
    g = torch.Generator().manual_seed(0)
    t, s = encoder.num_frames, encoder.image_size
    clip, img = torch.randn(2, t, 3, s, s, generator=g), torch.randn(2, 3, s, s, generator=g)
    with torch.no_grad():
        return [encoder(clip, sensor) for sensor in (0, "dm", -1)] + [encoder(img, 1, "none"), encoder(clip, 5, "last")]


@pytest.mark.parametrize("frames", [4, 2])
def test_anytouch2_file_to_hub_by_path_id_and_save_pretrained(frames, tmp_path, monkeypatch, capsys):
    src = released_file(tiny_encoder(frames, seed=3), tmp_path / f"checkpoint-{frames}frames.pth")
    clip = clip_config(tmp_path / "config.json")  # the released files need their CLIP config for a 32-pixel model
    source = anytouch.load_encoder(src, config=clip)
    out = tmp_path / "at2-hub"
    assert main(["convert", str(src), str(out), "--to", "hub", "--config", str(clip)]) == 0
    assert "hub folder" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["family"] == "anytouch2" and cfg["kind"] == "encoder" and cfg["arch"] == source.config.to_dict()
    assert cfg["provenance"]["source_format"] == "anytouch2"
    assert cfg["input"] == {"image_size": 32, "frames": frames, "frame_stride": source.frame_stride, "tube_size": 2,
                            "mean": list(CLIP_MEAN), "std": list(CLIP_STD), "channels": "RGB",
                            "background": {"subtract": True, "offset": BACKGROUND_OFFSET, "before_resize": True}}
    assert cfg["sensors"]["dm"] == 5 and cfg["sensors"]["universal"] == -1
    card = (out / "README.md").read_text()
    assert card == model_card(cfg)
    assert f"# AnyTouch 2 anytouch2-{frames}f (encoder)" in card and "ICLR 2026" in card and "(130/255)" in card
    assert f"clips of exactly {frames} frames taken {source.frame_stride} apart" in card
    assert "CLIP statistics" in card and "| `dm` | 5 |" in card and "background=bg" in card

    for again in (anytouch.load_encoder(out), anytouch.load_model(out), hub.from_pretrained(out)):
        assert isinstance(again, AnyTouch2Encoder) and not again.training
        assert all(torch.equal(a, b) for a, b in zip(_at2_features(source), _at2_features(again)))
    cache = tmp_path / "hf-cache"
    cache_repo(cache, "lab/anytouch2-tiny", out)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    by_id = anytouch.load_encoder("hf-hub:lab/anytouch2-tiny")
    assert all(torch.equal(a, b) for a, b in zip(_at2_features(source), _at2_features(by_id)))

    # from Python, with a probe-free card; the folder loads back to the same numbers
    folder = anytouch.save_pretrained(source, tmp_path / "py")
    assert json.loads((folder / "config.json").read_text())["input"] == cfg["input"]
    assert all(torch.equal(a, b) for a, b in zip(_at2_features(source), _at2_features(anytouch.load_encoder(folder))))


def test_anytouch2_hub_folder_refuses_a_contradicting_config_and_a_bad_family(tmp_path):
    folder = anytouch.save_pretrained(tiny_encoder(4), tmp_path / "h")
    same = anytouch.load_encoder(folder, config=clip_config(tmp_path / "ok.json"))
    assert torch.equal(same.pos_embed, tiny_encoder(4).pos_embed)
    with pytest.raises(ValueError, match="carries its own architecture.*differs in: touch"):
        anytouch.load_encoder(folder, config=clip_config(tmp_path / "bad.json", hidden_act="quick_gelu"))
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "kind": "stage2"}))
    with pytest.raises(ValueError, match="family 'anytouch2' with kind 'stage2'"):
        anytouch.load_encoder(folder)
