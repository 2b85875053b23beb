"""AnyTouch 2: the encoder against a naive re-implementation of the upstream forward on its own key layout, the
token layout and patch-embedding equivalences, sensor slots and the frame-count guards (docs/anytouch2.md)."""
import math

import pytest
import torch
import torch.nn.functional as F

import anytouch
from anytouch.checkpoint import anytouch2 as a2
from anytouch.checkpoint.common import on_meta
from anytouch.models.anytouch2 import AnyTouch2Encoder
from anytouch.models.config import AnyTouch2Config, TowerCfg
from anytouch.sensors import SENSOR_IDS, sensor_slot

from anytouch2_fixtures import G, IMG, PROJ, WIDTH, tiny_encoder



@pytest.fixture(autouse=True)
def _inference():
    with torch.no_grad():
        yield


def upstream_forward(sd, x, sensor, heads):
    """The upstream encoder written out on its released keys: (B,T,3,S,S) -> raw last hidden state (B, L, D)."""
    p = "touch_mae_model."
    w = sd[p + "touch_model.embeddings.patch_embedding.weight"]
    tok = F.conv3d(x.permute(0, 2, 1, 3, 4), w, stride=(2, w.shape[-1], w.shape[-1])).flatten(2).transpose(1, 2)
    pos = sd[p + "touch_model.embeddings.position_embedding.weight"][sd[p + "new_position_ids"][0]]
    tok = tok + pos[1:]
    cls = (sd[p + "touch_model.embeddings.class_embedding"] + pos[0]).expand(x.shape[0], 1, -1)
    sens = sd[p + "sensor_token"][sensor].expand(x.shape[0], -1, -1)
    h = torch.cat([cls, sens, tok], 1)
    ln = lambda t, k: F.layer_norm(t, t.shape[-1:], sd[k + ".weight"], sd[k + ".bias"], 1e-5)  # noqa: E731
    lin = lambda t, k: t @ sd[k + ".weight"].T + sd[k + ".bias"]  # noqa: E731
    h = ln(h, p + "touch_model.pre_layrnorm")
    b, n, d = h.shape
    for i in range(len({k.split(".")[4] for k in sd if ".encoder.layers." in k})):
        pre = f"{p}touch_model.encoder.layers.{i}."
        y = ln(h, pre + "layer_norm1")
        q, k, v = (lin(y, pre + f"self_attn.{m}_proj").view(b, n, heads, d // heads).transpose(1, 2) for m in "qkv")
        att = (q @ k.transpose(-1, -2) / math.sqrt(d // heads)).softmax(-1)
        h = h + lin((att @ v).transpose(1, 2).reshape(b, n, d), pre + "self_attn.out_proj")
        h = h + lin(F.gelu(lin(ln(h, pre + "layer_norm2"), pre + "mlp.fc1")), pre + "mlp.fc2")
    return h


@pytest.mark.parametrize("frames", [4, 2])
def test_matches_upstream_forward_and_pooling_identities(frames):
    enc = tiny_encoder(frames)
    sd = a2.to_upstream(enc)
    x = torch.randn(2, frames, 3, IMG, IMG)
    raw = upstream_forward(sd, x, 3, heads=2)
    assert raw.shape == (2, 1 + 5 + frames // 2 * G * G, WIDTH)
    torch.testing.assert_close(enc(x, 3, pooling="none"), raw, atol=1e-5, rtol=1e-5)
    post = F.layer_norm(raw, (WIDTH,), enc.norm_post.weight, enc.norm_post.bias, 1e-5)
    torch.testing.assert_close(enc(x, 3, pooling="tokens"), post @ enc.proj.weight.T, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc(x, 3, pooling="cls"), enc(x, 3, pooling="tokens")[:, 0], atol=1e-6, rtol=1e-6)
    last = raw[:, 6 + (frames // 2 - 1) * G * G:].mean(1)
    torch.testing.assert_close(enc(x, 3, pooling="last"), last, atol=1e-5, rtol=1e-5)
    assert enc(x, 3).shape == (2, PROJ)
    with pytest.raises(ValueError, match="unknown pooling 'global'"):
        enc(x, 3, pooling="global")


def test_patch_embedding_is_a_sum_of_per_frame_convs_in_time_major_order():
    enc = tiny_encoder(4)
    w = enc.patch_embed.weight  # (D, RGB, time-in-tube, p, p): the released layout, unchanged
    assert w.shape == (WIDTH, 3, 2, 8, 8)
    x = torch.randn(1, 4, 3, IMG, IMG)
    tokens = enc.patchify(x)
    for t in range(2):
        ref = F.conv2d(x[:, 2 * t], w[:, :, 0], stride=8) + F.conv2d(x[:, 2 * t + 1], w[:, :, 1], stride=8)  # (1,D,g,g)
        for r, c in ((0, 0), (1, 3), (3, 2)):
            n = enc.token_index(t, r, c) - enc.num_prefix_tokens
            assert n == t * G * G + r * G + c
            torch.testing.assert_close(tokens[0, n], ref[0, :, r, c], atol=1e-5, rtol=1e-5)


def test_an_image_is_a_clip_of_identical_frames():
    enc = tiny_encoder(4)
    img = torch.randn(2, 3, IMG, IMG)
    clip = img.unsqueeze(1).expand(-1, 4, -1, -1, -1)
    assert torch.equal(enc(img, "digit", pooling="none"), enc(clip, "digit", pooling="none"))
    tubes = enc.patchify(clip).view(2, 2, G * G, WIDTH)
    summed = F.conv2d(img, enc.patch_embed.weight.sum(2), stride=8).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tubes[:, 0], summed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tubes[:, 1], summed, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("frames", [4, 2])
def test_frame_count_and_layout_traps_raise(frames):
    enc = tiny_encoder(frames)
    other = 2 if frames == 4 else 4
    for t in (3, other, frames + 1):  # T = 3 would be read as (B,3,T,H,W) upstream: time and colour swapped
        with pytest.raises(ValueError, match=f"exactly {frames} frames"):
            enc(torch.randn(1, t, 3, IMG, IMG), 0)
    with pytest.raises(ValueError, match="clip batch"):
        enc(torch.randn(1, 3, frames, IMG, IMG), 0)  # channels-first clip: never silently permuted
    with pytest.raises(ValueError, match=f"must be {IMG}x{IMG}"):
        enc(torch.randn(1, frames, 3, IMG * 2, IMG * 2), 0)
    with pytest.raises(TypeError, match="CLIP-normalised"):
        enc(torch.zeros(1, frames, 3, IMG, IMG, dtype=torch.uint8), 0)


def test_sensor_ids_and_per_family_slots():
    enc = tiny_encoder(2)
    x = torch.randn(1, 2, 3, IMG, IMG)
    assert SENSOR_IDS["dm"] == 5 and anytouch.sensor_id("DM") == 5
    assert torch.equal(enc(x, -1), enc(x, 19)) and torch.equal(enc(x, "universal"), enc(x, 19))
    assert torch.equal(enc(x, "dm"), enc(x, 5)) and not torch.equal(enc(x, "dm"), enc(x, 4))
    assert enc.num_sensors == 20
    assert sensor_slot("universal", "anytouch2") == 19 and sensor_slot(-1, "anytouch") == 9
    assert sensor_slot("dm", "anytouch2") == 5 and sensor_slot("digit", "anytouch") == 1
    with pytest.raises(ValueError, match="out of range"):
        sensor_slot(12, "anytouch")
    with pytest.raises(ValueError, match="unknown model family"):
        sensor_slot(0, "anytouch3")


@pytest.mark.parametrize("frames,stride,rows", [(4, 2, 393), (2, 6, 197)])
def test_released_vit_b16_shapes_give_the_variant(frames, stride, rows):
    """The released files' shapes (checked on the meta device: no memory) -> ViT-B/16 at 224, 12 heads."""
    enc = on_meta(lambda: AnyTouch2Encoder(AnyTouch2Config(num_frames=frames)))
    sd = enc.state_dict()
    assert sd["pos_embed"].shape == (rows, 768) and sd["patch_embed.weight"].shape == (768, 3, 2, 16, 16)
    assert sd["sensor_tokens"].shape == (20, 5, 768) and sd["proj.weight"].shape == (512, 768)
    assert len(sd) + 1 == 202  # + new_position_ids = the 202 released keys
    cfg = a2.config_from_shapes(sd)
    assert (cfg.num_frames, cfg.frame_stride, cfg.tube_size, cfg.touch.heads, cfg.touch.layers) == (frames, stride, 2, 12, 12)
    assert (cfg.touch.image_size, cfg.touch.act, cfg.touch.layer_norm_eps, cfg.projection_dim) == (224, "gelu", 1e-5, 512)
    assert sum(v.numel() for k, v in sd.items()) == (87_009_792 if frames == 4 else 86_859_264)


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of tube_size"):
        AnyTouch2Config(num_frames=3)
    assert AnyTouch2Config(num_frames=6).frame_stride == 1
    cfg = AnyTouch2Config(touch=TowerCfg(width=32, layers=1, heads=2, mlp_width=64, patch_size=8, image_size=32))
    assert AnyTouch2Config.from_dict(cfg.to_dict()) == cfg
