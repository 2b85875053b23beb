"""AnyTouch 2 files: the released layout and the probe files recognised by content, strict loading with every dropped
key named, the silent-loading pitfalls turned into errors, conversion round trips and export (docs/anytouch2.md)."""
import argparse
import pickle

import pytest
import torch

import anytouch
from anytouch.checkpoint import anytouch2 as a2
from anytouch.checkpoint.common import CheckpointMismatchError
from anytouch.checkpoint.io import CorruptCheckpointError, UnsafeCheckpointError
from anytouch.models.anytouch2 import AnyTouch2Encoder
from anytouch.models.anytouch2_heads import AnyTouch2Probe, AttentiveHead

from anytouch2_fixtures import IMG, PROJ, WIDTH, clip_config, probe_file, released_file, tiny_encoder



@pytest.fixture(autouse=True)
def _inference():
    with torch.no_grad():
        yield


@pytest.fixture
def cfg(tmp_path):
    return clip_config(tmp_path / "config.json")


@pytest.mark.parametrize("frames,stride", [(4, 2), (2, 6)])
def test_released_file_loads_by_content_with_dropped_keys_named(tmp_path, cfg, frames, stride):
    enc = tiny_encoder(frames)
    path = released_file(enc, tmp_path / "weights.bin")  # the name says nothing
    loaded, report = anytouch.load_encoder(path, config=cfg, return_report=True)
    assert isinstance(loaded, AnyTouch2Encoder) and not loaded.training
    assert (loaded.num_frames, loaded.frame_stride, loaded.tube_size, loaded.image_size) == (frames, stride, 2, IMG)
    assert loaded.num_sensors == 20 and loaded.config.touch.act == "gelu" and loaded.config.touch.heads == 2
    x = torch.randn(2, frames, 3, IMG, IMG)
    for pooling in ("cls", "tokens", "none", "last"):
        assert torch.equal(loaded(x, "dm", pooling=pooling), enc(x, "dm", pooling=pooling))
    ignored = dict(report.ignored)
    assert set(ignored) == {"touch_mae_model.decoder_embed.weight", "touch_mae_model.mask_token",
                            "touch_mae_model.mask_token_diff", "touch_mae_model.diff_touch_decoder_blocks.0.norm.weight",
                            "alpha_vision", "touch_mae_model.new_position_ids"}
    assert "arange" in ignored["touch_mae_model.new_position_ids"] and "decoder" in ignored["touch_mae_model.mask_token"]
    assert isinstance(anytouch.load_model(path, config=cfg), AnyTouch2Encoder)


def test_registry_builder_makes_only_the_encoder(tmp_path, cfg):
    from collections import namedtuple

    enc = tiny_encoder(2)
    path = released_file(enc, tmp_path / "w.pth")
    loaded = namedtuple("Loaded", "content weights")(torch.load(path, weights_only=True), path)
    model, _ = a2.build(loaded, "model", cfg)
    x = torch.randn(1, 2, 3, IMG, IMG)
    assert torch.equal(model(x, 2), enc(x, 2))
    with pytest.raises(ValueError, match="holds only an encoder"):
        a2.build(loaded, "mae", cfg)


def test_wrapped_and_module_prefixed_files_load(tmp_path, cfg):
    enc = tiny_encoder(2)
    sd = {"module." + k: v for k, v in a2.to_upstream(enc).items()}
    torch.save({"model": sd}, tmp_path / "w.pth")
    x = torch.randn(1, 2, 3, IMG, IMG)
    assert torch.equal(anytouch.load_encoder(tmp_path / "w.pth", config=cfg)(x, 0), enc(x, 0))


def test_wrong_or_damaged_files_are_errors_never_a_random_encoder(tmp_path, cfg):
    enc = tiny_encoder(4)
    sd = dict(a2.to_upstream(enc))
    bad = dict(sd)
    del bad["touch_mae_model.touch_model.encoder.layers.1.mlp.fc2.weight"]
    torch.save(bad, tmp_path / "missing.pth")
    with pytest.raises(CheckpointMismatchError, match="missing 1 key"):
        anytouch.load_encoder(tmp_path / "missing.pth", config=cfg)
    shifted = dict(sd, **{"touch_mae_model.new_position_ids": torch.arange(1, 34).unsqueeze(0)})
    torch.save(shifted, tmp_path / "ids.pth")
    with pytest.raises(CheckpointMismatchError, match="new_position_ids' must be arange"):
        anytouch.load_encoder(tmp_path / "ids.pth", config=cfg)
    torch.save({"tactile_model_typo." + k: v for k, v in sd.items() if k.endswith("sensor_token")}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="unrecognised checkpoint"):  # upstream would fill a random encoder here
        anytouch.load_encoder(tmp_path / "x.pth", config=cfg)
    released_file(enc, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated"):
        anytouch.load_encoder(tmp_path / "cut.pth", config=cfg)
    with pytest.raises(CheckpointMismatchError, match="not 1 \\+ a whole number of 4x4 grids|image size"):
        anytouch.load_encoder(tmp_path / "ok.pth")  # no config: ViT-B/16 at 224 is assumed, the table does not fit
    wide = clip_config(tmp_path / "wide.json", )
    wide.write_text(wide.read_text().replace('"hidden_size": 32', '"hidden_size": 48'))
    with pytest.raises(CheckpointMismatchError, match="hidden_size=48 but the weights have 32"):
        anytouch.load_encoder(tmp_path / "ok.pth", config=wide)


def test_anytouch1_files_are_not_taken_for_anytouch2():
    at1 = {"touch_mae_model.touch_model.embeddings.patch_embedding.weight": torch.zeros(8, 3, 14, 14),
           "touch_mae_model.video_patch_embedding.weight": torch.zeros(8, 3, 3, 14, 14),
           "touch_mae_model.sensor_token": torch.zeros(10, 5, 8)}
    assert not a2.detect(at1) and not a2.detect({"model": at1})
    assert a2.detect({"model": dict(a2.to_upstream(tiny_encoder(2)))})


def test_conversions_round_trip(tmp_path, cfg):
    enc = tiny_encoder(4)
    src = released_file(enc, tmp_path / "released.pth")
    st, _ = a2.convert(src, tmp_path / "enc.safetensors", config=cfg)
    assert a2.detect_file(src) and a2.detect_file(st)
    x = torch.randn(2, 4, 3, IMG, IMG)
    back = anytouch.load_encoder(st)  # the architecture travels in the metadata: no config needed
    assert torch.equal(back(x, 1), enc(x, 1)) and back.frame_stride == 2
    up, report = a2.convert(st, tmp_path / "upstream.pth")
    flat = torch.load(up, weights_only=True)
    assert list(flat) == list(a2.to_upstream(enc))  # the released order, new_position_ids included
    assert flat["touch_mae_model.new_position_ids"].dtype == torch.int64
    assert torch.equal(anytouch.load_encoder(up, config=cfg)(x, 1), enc(x, 1))
    with pytest.raises(ValueError, match="to='onnx'"):
        a2.convert(src, tmp_path / "x.onnx", to="onnx", config=cfg)


def test_torchscript_export_of_an_anytouch2_encoder(tmp_path):
    from anytouch.export import export_encoder

    checks = export_encoder(tiny_encoder(2), tmp_path, formats=("torchscript",), input="clip", pooling="none")
    assert checks["torchscript"].max_abs_diff < 1e-4


def _force_head(seed=1):
    torch.manual_seed(seed)
    head = AttentiveHead(WIDTH, 16, 3, hidden=12)
    for p in head.parameters():
        p.data.normal_(0, 0.3)
    return head


def naive_attentive_head(head, tokens, heads):
    """V-JEPA's attentive probe written out: query over LN(tokens), residual, LN + MLP residual, then the probe."""
    pb = head.pooler.cross_attention_block
    b, n, d = tokens.shape
    kv = pb.norm1(tokens) @ pb.xattn.kv.weight.T + pb.xattn.kv.bias
    k, v = kv[..., :d], kv[..., d:]
    q = head.pooler.query_tokens.expand(b, -1, -1) @ pb.xattn.q.weight.T + pb.xattn.q.bias
    split = lambda t: t.view(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
    att = (split(q) @ split(k).transpose(-1, -2) / (d // heads) ** 0.5).softmax(-1)
    y = (att @ split(v)).transpose(1, 2).reshape(b, 1, d) @ pb.xattn.proj.weight.T + pb.xattn.proj.bias
    q = head.pooler.query_tokens + y
    q = q + pb.mlp(pb.norm2(q))
    return head.probe(q[:, 0])


def test_force_probe_file_loads_with_its_head(tmp_path, cfg):
    enc, head = tiny_encoder(4), _force_head()
    path = probe_file(enc, head, tmp_path / "checkpoint-0.pth", dataset="ours_force", pooling="none")
    probe, report = anytouch.load_probe(path, config=cfg, return_report=True)  # 16 pooler heads, as upstream
    assert isinstance(probe, AnyTouch2Probe) and probe.args["dataset"] == "ours_force" and probe.num_frames == 4
    x = torch.randn(3, 4, 3, IMG, IMG)
    out = probe(x, "digit")
    assert out.shape == (3, 3)
    torch.testing.assert_close(out, naive_attentive_head(head, enc(x, 1, pooling="none"), 16), atol=1e-5, rtol=1e-5)
    assert {"optimizer", "epoch", "scaler"} <= set(report.ignored_keys())
    assert not any(k.startswith("head.") for k in report.ignored_keys())
    encoder_only = anytouch.load_encoder(path, config=cfg)  # the probe's encoder equals the bare encoder
    assert torch.equal(encoder_only(x, 1, pooling="none"), enc(x, 1, pooling="none"))


@pytest.mark.parametrize("pooling,fan_in", [("cls", PROJ), ("last", WIDTH)])
def test_linear_probe_files(tmp_path, cfg, pooling, fan_in):
    enc = tiny_encoder(2)
    head = torch.nn.Linear(fan_in, 20)
    path = probe_file(enc, head, tmp_path / "p.pth", dataset="material", pooling=pooling)
    probe = anytouch.load_probe(path, config=cfg)
    x = torch.randn(2, 2, 3, IMG, IMG)
    torch.testing.assert_close(probe(x, 0), head(enc(x, 0, pooling=pooling)))


def test_probe_file_guards(tmp_path, cfg):
    enc = tiny_encoder(4)
    lying = probe_file(enc, torch.nn.Linear(PROJ, 5), tmp_path / "a.pth", dataset="material", pooling="last")
    with pytest.raises(CheckpointMismatchError, match="args.pooling is 'last' but the head's weights are those of"):
        anytouch.load_probe(lying, config=cfg)
    frames = probe_file(enc, torch.nn.Linear(PROJ, 5), tmp_path / "b.pth", dataset="material", pooling="cls")
    obj = torch.load(frames, weights_only=False)
    obj["args"].num_frames = 2
    torch.save(obj, frames)
    with pytest.raises(CheckpointMismatchError, match="args.num_frames is 2 but the encoder weights are the 4-frame"):
        anytouch.load_probe(frames, config=cfg)
    obj["args"] = argparse.Namespace(hook=pickle.loads)  # a pickled function: never unpickled
    torch.save(obj, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError):
        anytouch.load_probe(tmp_path / "evil.pth", config=cfg)
    released_file(enc, tmp_path / "enc.pth")
    with pytest.raises(ValueError, match="not an AnyTouch 2 probe file"):
        anytouch.load_probe(tmp_path / "enc.pth", config=cfg)


def test_cli_converts_and_exports_anytouch2_files(tmp_path, capsys):
    """anytouch convert: released layout -> safetensors -> upstream, features unchanged; --to ours is refused with
    the way out; anytouch export defaults to clip input for the family."""
    from anytouch import load_encoder
    from anytouch.cli import main

    enc = tiny_encoder(2)
    src = released_file(enc, tmp_path / "at2.pth")
    cfg = str(clip_config(tmp_path / "config.json"))
    assert main(["convert", str(src), str(tmp_path / "at2.safetensors"), "--config", cfg]) == 0
    assert main(["convert", str(tmp_path / "at2.safetensors"), str(tmp_path / "back.pth"), "--to", "original"]) == 0
    clip = torch.rand(2, 2, 3, 32, 32)
    sensor = torch.tensor([1, -1])
    with torch.no_grad():
        want = enc(clip, sensor)
        for path, config in (("at2.safetensors", None), ("back.pth", cfg)):  # the export carries its architecture
            torch.testing.assert_close(load_encoder(tmp_path / path, config)(clip, sensor), want, rtol=0, atol=0)
    assert main(["convert", str(src), str(tmp_path / "x.pth"), "--to", "ours", "--config", cfg]) == 2
    assert "--to safetensors or --to upstream" in capsys.readouterr().err
    assert main(["export", "-c", str(tmp_path / "at2.safetensors"), "-o", str(tmp_path / "exp"), "--format", "torchscript"]) == 0
    traced = torch.jit.load(str(next((tmp_path / "exp").glob("*.torchscript.pt"))))
    torch.testing.assert_close(traced(clip, sensor), want, rtol=1e-5, atol=1e-5)  # a clip input by default


def test_embed_uses_the_family_window_statistics_and_background(tmp_path):
    """anytouch embed on an AnyTouch 2 checkpoint: windows of num_frames frames frame_stride apart, the encoder's
    own preprocessing with the background frame; equal to preprocessing and encoding by hand."""
    import cv2
    import numpy as np

    from anytouch.cli import main

    enc = tiny_encoder(2)  # 2 frames, 6 apart
    ckpt = a2.export_safetensors(enc, tmp_path / "at2.safetensors")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(9)]
    clip_dir = tmp_path / "clip"
    clip_dir.mkdir()
    for t, f in enumerate(frames):
        cv2.imwrite(str(clip_dir / f"{t}.png"), f[..., ::-1])
    bg = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "bg.png"), bg[..., ::-1])
    out = tmp_path / "feats.npy"
    assert main(["embed", str(clip_dir), "--clip-folders", "-c", str(ckpt), "-s", "dm", "--background",
                 str(tmp_path / "bg.png"), "-o", str(out)]) == 0
    got = np.load(out)
    names = (tmp_path / "feats.names.txt").read_text().split()
    assert names == [f"{clip_dir}#{t}" for t in range(3)]  # starts 0, 1, 2: frames (t, t+6) of 9
    for t in range(3):
        x = enc.preprocess(torch.from_numpy(np.stack([frames[t], frames[t + 6]]))[None], torch.from_numpy(bg))
        with torch.no_grad():
            want = enc(x, "dm").numpy()[0]
        np.testing.assert_allclose(got[t], want, rtol=1e-5, atol=1e-5)
