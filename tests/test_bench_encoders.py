"""Benchmark encoder plug-ins: YAML specs, window selection, and each family against an independent reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from anytouch.api import load_encoder
from anytouch.bench.encoders import build_encoder, load_spec, select_window
from anytouch.bench.sparsh import convert_sparsh_state_dict, sincos_pos_embed, to_sparsh_state_dict
from anytouch.preprocess import preprocess_touch_batch
from fixtures_bench import (anytouch1_checkpoint, naive_timm_vit, sparsh_checkpoint, sparsh_state, t3_folder,
                            write_yaml)


def _frames(b=2, t=3, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, 3), generator=g, dtype=torch.uint8)


def test_select_window_takes_nearest_offsets_back_from_the_newest_frame():
    x = torch.arange(6).view(1, 6, 1, 1, 1).expand(1, 6, 2, 2, 3)  # frame k holds value k
    assert select_window(x, 1, 2, 5)[0, :, 0, 0, 0].tolist() == [0, 5]  # Sparsh: [t-5, t]
    assert select_window(x, 2, 3, 2)[0, :, 0, 0, 0].tolist() == [3, 4, 5]  # source stride 2, want stride 2
    assert select_window(x, 1, 4, 3)[0, :, 0, 0, 0].tolist() == [0, 0, 2, 5]  # clamped to the oldest frame
    assert select_window(x[:, :1], 1, 3, 1)[0, :, 0, 0, 0].tolist() == [0, 0, 0]  # an image is repeated


def test_spec_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder family 'sparsch'"):
        build_encoder(write_yaml(tmp_path / "a.yaml", "sparsch"))
    with pytest.raises(ValueError, match=r"a\.yaml.*unknown option\(s\) \['imgsize'\]"):
        build_encoder(write_yaml(tmp_path / "a.yaml", "timm", model="resnet18", imgsize=3))
    (tmp_path / "b.yaml").write_text("family: timm\nweights: x\n")
    with pytest.raises(ValueError, match=r"b\.yaml: unknown key\(s\) \['weights'\]"):
        load_spec(tmp_path / "b.yaml")
    spec = load_spec(write_yaml(tmp_path / "c.yaml", "sparsh", "w/s.ckpt"))
    assert spec.name == "c" and spec.checkpoint == str(tmp_path / "w" / "s.ckpt")  # relative to the YAML file


def test_shipped_encoder_configs_parse(monkeypatch):
    from pathlib import Path

    from anytouch.bench.encoders import _LAZY_FAMILIES

    monkeypatch.setenv("ANYTOUCH_WEIGHTS", "/weights")
    files = sorted(Path(__file__).parents[1].joinpath("configs", "bench", "encoders").glob("*.yaml"))
    families = {load_spec(f).family for f in files}
    assert families == set(_LAZY_FAMILIES)  # one example per family
    at1 = load_spec(next(f for f in files if f.stem == "anytouch1"))
    assert at1.checkpoint.startswith("/weights/") and at1.options["config"].startswith("/weights/")
    monkeypatch.delenv("ANYTOUCH_WEIGHTS")
    with pytest.raises(ValueError, match="unset environment variable"):
        load_spec(files[0])


def test_anytouch1_matches_the_library_encoder(tmp_path):
    ckpt = anytouch1_checkpoint(tmp_path / "at1.pt")
    plugin = build_encoder(write_yaml(tmp_path / "at1.yaml", "anytouch1", ckpt))
    frames = _frames()
    tokens, pooled = plugin.encode(frames, None, ["gelsight", "digit"])
    enc = load_encoder(ckpt)
    x = preprocess_touch_batch(frames, enc.image_size)
    assert torch.allclose(pooled, enc(x, [0, 1]), atol=1e-5)
    n = (enc.image_size // enc.patch_size) ** 2
    assert tokens.shape == (2, 1 + n, plugin.embed_dim) and plugin.contract.mean[0] == pytest.approx(0.485)
    with pytest.raises(ValueError, match="unknown sensor 'gelsite'"):
        plugin.encode(frames, None, ["gelsite", "digit"])


def test_sparsh_converter_matches_a_reference_forward(tmp_path):
    path = sparsh_checkpoint(tmp_path / "dino.ckpt", prefix="teacher_encoder.backbone.")
    plugin = build_encoder(write_yaml(tmp_path / "sp.yaml", "sparsh", path, image_size=[32, 24], heads=2))
    assert plugin.contract.frames == 2 and plugin.contract.stride == 5 and plugin.contract.mean is None
    frames, bg = _frames(t=2, h=24, w=32), _frames(t=1, h=24, w=32, seed=1)[:, 0]
    tokens, pooled = plugin.encode(frames, bg, ["digit", "digit"])
    # reference: background difference, rotate clockwise (landscape -> portrait), newest frame first on channels
    sd = sparsh_state(prefix="")
    x = frames.float() / 255 - bg[:, None].float() / 255 + 0.5
    x = torch.floor(x.clamp(0, 1) * 255) / 255  # (B, T, H, W, 3)
    x = torch.rot90(x.permute(0, 1, 4, 2, 3), k=-1, dims=(-2, -1))  # (B, T, 3, 32, 24)
    x = torch.cat([x[:, 1], x[:, 0]], dim=1)
    h = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=8).flatten(2).transpose(1, 2)
    h = h + sincos_pos_embed(32, (4, 3))
    h = torch.cat([sd["register_tokens"].expand(2, -1, -1), h], dim=1)
    ref = F.layer_norm(naive_timm_vit(h, sd, "", 2, 2), (32,), sd["norm.weight"], sd["norm.bias"], 1e-6)[:, 1:]
    assert tokens.shape == (2, 12, 32)  # patch tokens only: the register is dropped
    assert torch.allclose(tokens, ref, atol=1e-4)
    assert torch.allclose(pooled, ref.mean(1), atol=1e-4)
    assert any("mask_token" in n for n in plugin.notes) and any("predictor" in n for n in plugin.notes)


def test_sparsh_layout_round_trip():
    sd = sparsh_state(prefix="encoder.")
    model, _ = convert_sparsh_state_dict(sd, (32, 24))
    back = to_sparsh_state_dict(model, "encoder.")
    assert set(back) == set(sd) - {"encoder.mask_token"}
    assert all(torch.equal(back[k], sd[k]) for k in back)


def test_sparsh_converter_is_strict():
    sd = sparsh_state()
    with pytest.raises(ValueError, match=r"unused keys \['blocks.0.attn.extra'\]"):
        convert_sparsh_state_dict({**sd, "target_encoder.blocks.0.attn.extra": torch.zeros(1)}, (32, 24))
    del sd["target_encoder.blocks.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match=r"missing \['blocks.1.mlp.fc2.bias'\]"):
        convert_sparsh_state_dict(sd, (32, 24))
    both = {**sparsh_state(), **sparsh_state(prefix="encoder.")}
    with pytest.raises(ValueError, match="exactly one Sparsh encoder"):
        convert_sparsh_state_dict(both, (32, 24))
    with pytest.raises(ValueError, match="exactly one Sparsh encoder"):
        convert_sparsh_state_dict({"model.x": torch.zeros(1)}, (32, 24))


def test_t3_stem_and_trunk_match_a_reference_forward(tmp_path):
    root = t3_folder(tmp_path / "t3", stems=("gs_green", "digit"))
    yaml_path = write_yaml(tmp_path / "t3.yaml", "t3", root, stems={"gelsight": "gs_green", "digit": "digit"},
                           mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], heads=2)
    plugin = build_encoder(yaml_path)
    frames = _frames(t=2, h=32, w=40)
    tokens, pooled = plugin.encode(frames, None, ["gelsight", "digit"])
    x = frames[:, -1].permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(37, 46), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    x = (x[..., 2:34, 7:39] - 0.5) / 0.25  # shorter side 32·256/224 = 37, centre crop 32
    for row, stem in ((0, "gs_green"), (1, "digit")):
        s = torch.load(root / "encoders" / f"{stem}.pth")
        h = F.conv2d(x[row:row + 1], s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=8)
        h = torch.cat([s["cls_token"], h.flatten(2).transpose(1, 2)], dim=1) + s["pos_embed"]
        h = naive_timm_vit(h, s, "", 1, 2)
        tr = torch.load(root / "trunk.pth")
        ref = F.layer_norm(naive_timm_vit(h, tr, "", 1, 2), (32,), tr["norm.weight"], tr["norm.bias"], 1e-6)
        assert torch.allclose(tokens[row], ref[0], atol=1e-4)
        assert torch.allclose(pooled[row], ref[0, 0], atol=1e-4)
    with pytest.raises(ValueError, match=r"no stem for sensor\(s\) \['gelslim'\]"):
        plugin.encode(frames, None, ["gelslim", "digit"])


def test_t3_never_falls_back_to_another_stem(tmp_path):
    root = t3_folder(tmp_path / "t3")
    yaml_path = write_yaml(tmp_path / "t3.yaml", "t3", root, stems={"digit": "digit"}, mean=[0.5] * 3, std=[0.2] * 3)
    with pytest.raises(FileNotFoundError, match="digit.pth"):
        build_encoder(yaml_path)


def test_timm_baseline_is_frame_by_frame_and_averaged(tmp_path):
    yaml_path = write_yaml(tmp_path / "vit.yaml", "timm", model="vit_tiny_patch16_224", frames=2,
                           model_kwargs={"img_size": 32, "depth": 1})
    plugin = build_encoder(yaml_path)
    assert plugin.contract.image_size == (32, 32) and plugin.embed_dim == 192
    one = _frames(t=1)
    tok1, pool1 = plugin.encode(one, None, ["x", "x"])
    tok2, pool2 = plugin.encode(one.expand(-1, 2, -1, -1, -1), None, ["x", "x"])
    assert torch.allclose(pool1, pool2, atol=1e-5) and torch.allclose(tok1, tok2, atol=1e-5)
    two = _frames(t=2, seed=3)
    _, pa = plugin.encode(two[:, :1], None, ["x", "x"])
    _, pb = plugin.encode(two[:, 1:], None, ["x", "x"])
    _, pab = plugin.encode(two, None, ["x", "x"])
    assert torch.allclose(pab, (pa + pb) / 2, atol=1e-5)
    again = build_encoder(yaml_path)  # random init is seeded: the same spec gives the same weights
    assert all(torch.equal(a, b) for a, b in zip(plugin.state_dict().values(), again.state_dict().values()))


def test_timm_checkpoint_is_loaded_strictly(tmp_path):
    yaml_path = write_yaml(tmp_path / "r.yaml", "timm", model="resnet18", image_size=32)
    plugin = build_encoder(yaml_path)
    sd = {k: v + 1 for k, v in plugin.model.state_dict().items()}
    torch.save({**sd, "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, tmp_path / "r.pth")
    loaded = build_encoder(write_yaml(tmp_path / "r2.yaml", "timm", tmp_path / "r.pth", model="resnet18",
                                      image_size=32))
    w = loaded.model.state_dict()["conv1.weight"]
    assert torch.equal(w, sd["conv1.weight"])
    tokens, pooled = loaded.encode(_frames(t=1), None, ["x", "x"])
    assert tokens.shape == (2, 1, 512) and pooled.shape == (2, 512)  # 32 px / 32 = one cell of the CNN map
    torch.save({**sd, "extra.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"unexpected \['extra.weight'\]"):
        build_encoder(write_yaml(tmp_path / "r3.yaml", "timm", tmp_path / "bad.pth", model="resnet18"))


def test_anytouch2_slot_errors_clearly_without_the_module(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a):
        if name == "anytouch.models.anytouch2":
            raise ModuleNotFoundError("No module named 'anytouch.models.anytouch2'")
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", fake)
    (tmp_path / "w.pt").write_bytes(b"")
    with pytest.raises(ImportError, match="family 'anytouch2' needs anytouch.models.anytouch2"):
        build_encoder(write_yaml(tmp_path / "at2.yaml", "anytouch2", tmp_path / "w.pt"))


def test_sincos_table_matches_the_mae_formula():
    t = sincos_pos_embed(8, (2, 3))
    row, col, i = 1, 2, 1
    omega = 1 / 10000 ** (i / 2)
    assert t.shape == (6, 8)
    assert t[row * 3 + col, i] == pytest.approx(math.sin(col * omega), abs=1e-6)
    assert t[row * 3 + col, 4 + 2 + i] == pytest.approx(math.cos(row * omega), abs=1e-6)


@pytest.mark.slow  # importing open_clip takes ~30 s on the CI machine (it imports transformers)
def test_open_clip_baseline_returns_vit_tokens_and_loads_a_local_file(tmp_path):
    import json

    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16,
                                           "head_width": 32},
           "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "bench-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(tmp_path / "bench-tiny-clip.json"))
    torch.manual_seed(0)
    model = open_clip.create_model("bench-tiny-clip")
    sd = {k: v + 0.5 for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "clip.pt")
    plugin = build_encoder(write_yaml(tmp_path / "oc.yaml", "open_clip", tmp_path / "clip.pt", model="bench-tiny-clip"))
    assert torch.equal(plugin.visual.conv1.weight, sd["visual.conv1.weight"])  # the file's weights, not random ones
    tokens, pooled = plugin.encode(_frames(t=1), None, ["x", "x"])
    assert tokens.shape == (2, 4, 64) and pooled.shape == (2, 32) and plugin.contract.mean[0] == pytest.approx(0.4815, abs=1e-4)


def test_anytouch2_plugin_follows_its_own_contract(tmp_path):
    """A tiny AnyTouch 2 file (architecture in the safetensors header) through the bench: window 4 @ stride 2 cut
    from a 7-frame sample, background difference + 130/255 for the sample that has one, CLIP statistics; tokens are
    the raw last hidden state and pooled proj(post-LN CLS), both equal to a direct computation."""
    from anytouch.bench.features import encode_batch
    from anytouch.checkpoint.anytouch2 import export_safetensors
    from anytouch.preprocess import CLIP_MEAN, CLIP_STD
    from anytouch2_fixtures import tiny_encoder

    enc = tiny_encoder(4)
    plugin = build_encoder(write_yaml(tmp_path / "at2.yaml", "anytouch2",
                                      export_safetensors(enc, tmp_path / "at2.safetensors")))
    c = plugin.contract
    assert (c.frames, c.stride, c.needs_background, c.mean, c.std) == (4, 2, True, CLIP_MEAN, CLIP_STD)
    frames, bg = _frames(t=7, h=24, w=40), _frames(t=1, h=24, w=40, seed=1)[:, 0]
    batch = {"frames": frames, "background": bg, "has_background": torch.tensor([True, False]),
             "sensor": ["gelsight", "digit"]}
    tokens, pooled = encode_batch(plugin, batch, source_stride=1)
    x = frames[:, [0, 2, 4, 6]].permute(0, 1, 4, 2, 3).float() / 255  # t-6, t-4, t-2, t: oldest first
    x[0] = (x[0] - bg[0].permute(2, 0, 1).float() / 255 + 130 / 255).clamp(0, 1)
    x = F.interpolate(x.flatten(0, 1), size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    x = ((x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)).view(2, 4, 3, 32, 32)
    with torch.no_grad():
        ref = enc.forward_features(x, [0, 1])  # AnyTouch 2 sensor rows: GelSight 0, DIGIT 1
        ref_pooled = enc.proj(enc.norm_post(ref[:, 0]))
    assert tokens.shape == (2, 1 + 5 + 2 * 4 * 4, 32) and plugin.embed_dim == 32 and plugin.pooled_dim == 16
    assert torch.allclose(tokens, ref, atol=1e-5) and torch.allclose(pooled, ref_pooled, atol=1e-5)
    with pytest.raises(ValueError, match="not an AnyTouch 2 encoder"):
        build_encoder(write_yaml(tmp_path / "wrong.yaml", "anytouch2", anytouch1_checkpoint(tmp_path / "at1.pt")))


def test_feel_fingers_are_views_not_time(tmp_path):
    """Feel's A and B frames are two sensors: each is encoded alone as a still image (AnyTouch 1: three identical
    frames) and the features are concatenated, A first, as the original Feel probe does; read as time, AnyTouch 1
    would see the clip [A, A, B]."""
    from anytouch.bench.features import encode_batch

    plugin = build_encoder(write_yaml(tmp_path / "at1.yaml", "anytouch1", anytouch1_checkpoint(tmp_path / "at1.pt")))
    frames = _frames(t=2)
    batch = {"frames": frames, "background": torch.zeros(2, 24, 32, 3, dtype=torch.uint8),
             "has_background": torch.tensor([False, False]), "sensor": ["gelsight", "gelsight"]}
    tokens, pooled = encode_batch(plugin, batch, 1, views=2)
    ta, pa = plugin.encode(frames[:, [0, 0, 0]], None, ["gelsight"] * 2)
    tb, pb = plugin.encode(frames[:, [1, 1, 1]], None, ["gelsight"] * 2)
    assert torch.allclose(tokens, torch.cat([ta, tb], 1), atol=1e-5)
    assert torch.allclose(pooled, torch.cat([pa, pb], 1), atol=1e-5) and pooled.shape[1] == 2 * plugin.pooled_dim
    as_time, _ = plugin.encode(frames[:, [0, 0, 1]], None, ["gelsight"] * 2)
    assert torch.allclose(encode_batch(plugin, batch, 1)[0], as_time, atol=1e-5)  # the time rule's [A, A, B]
    assert not torch.allclose(as_time, ta, atol=1e-3)
    with pytest.raises(ValueError, match="2 views must hold 2 frames, got 3"):
        encode_batch(plugin, {**batch, "frames": _frames(t=3)}, 1, views=2)
