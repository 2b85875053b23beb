"""HF CLIP and open_clip -> AnyTouch initialisation (docs/original/checkpoints.md#clip-to-stage-1,
#stage-1-and-clip-to-stage-2), checked against the real libraries."""
import math

import pytest
import torch
import torch.nn.functional as F
from checkpoint_fixtures import TINY, clip_config_dict

from anytouch.checkpoint import hf_clip
from anytouch.checkpoint.common import CheckpointMismatchError
from anytouch.checkpoint.open_clip import open_clip_to_hf
from anytouch.models import AnyTouchModel, TouchMAE, sincos_pos_embed_2d

transformers = pytest.importorskip("transformers")


def _perturb(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return module.eval()


@pytest.fixture(scope="module")
def hf_model():
    cfg = {k: v for k, v in clip_config_dict().items() if k not in ("architectures", "model_type")}
    torch.manual_seed(0)
    return _perturb(transformers.CLIPModel(transformers.CLIPConfig(**cfg)), 1)


@pytest.fixture(scope="module")
def hf_sd(hf_model):
    sd = dict(hf_model.state_dict())
    sd["logit_scale"] = torch.tensor(4.0)  # differs from ln(1/0.07) so the overwrite is visible
    return sd


def _features(out):
    return out if torch.is_tensor(out) else out.pooler_output


def _ids():
    ids = torch.randint(1, 49000, (2, 77))
    ids[:, 0] = 49406
    ids[0, 5], ids[1, 9] = 49407, 49407  # EOT = the largest id: pooled by the argmax rule (eos_token_id 2)
    ids[0, 6:], ids[1, 10:] = 0, 0
    mask = (torch.arange(77) < torch.tensor([[6], [10]])).long()
    return ids, mask


def test_stage1_init_follows_the_original_clip_init(hf_sd):
    mae = TouchMAE(TINY)
    fresh = {k: v.clone() for k, v in mae.state_dict().items()}
    sd, report = hf_clip.hf_to_stage1(hf_sd, mae.state_dict(), "clip")
    mae.load_state_dict(sd, strict=True)
    # vision_model.* -> encoder, visual_projection -> touch projection
    pairs = {"encoder.cls_token": "vision_model.embeddings.class_embedding",
             "encoder.pos_embed": "vision_model.embeddings.position_embedding.weight",
             "encoder.norm_pre.weight": "vision_model.pre_layrnorm.weight",
             "encoder.norm_post.bias": "vision_model.post_layernorm.bias",
             "encoder.proj.weight": "visual_projection.weight",
             "encoder.blocks.1.self_attn.q_proj.weight": "vision_model.encoder.layers.1.self_attn.q_proj.weight",
             "encoder.blocks.0.mlp.fc2.bias": "vision_model.encoder.layers.0.mlp.fc2.bias",
             "encoder.blocks.1.layer_norm2.weight": "vision_model.encoder.layers.1.layer_norm2.weight"}
    for ours, theirs in pairs.items():
        assert torch.equal(sd[ours], hf_sd[theirs]), ours
    # inflation: W3[o, t, c] = W2[o, c] for every frame, no division
    w2 = hf_sd["vision_model.embeddings.patch_embedding.weight"]
    w3 = sd["encoder.patch_embed.weight"]
    assert w3.shape == (64, 3, 3, 14, 14)
    for t in range(3):
        assert torch.equal(w3[:, t], w2)
    # everything CLIP lacks keeps its fresh initialisation; decoder positions are the fixed sin-cos table
    for k in ("mask_token", "encoder.sensor_tokens", "decoder_embed.weight", "decoder_blocks.0.mlp.fc1.weight",
              "head_image.weight", "head_video.bias", "decoder_norm.weight"):
        assert torch.equal(sd[k], fresh[k]), k
        assert k in report.fresh_keys()
    assert torch.equal(sd["decoder_pos_embed"], sincos_pos_embed_2d(TINY.decoder.width, TINY.touch.grid).unsqueeze(0))
    ignored = dict(report.ignored)
    assert "logit_scale" in ignored and "text_projection.weight" in ignored
    assert "text_model.encoder.layers.0.mlp.fc1.weight" in ignored


def test_image_embedding_is_exactly_3x_clip(hf_sd):
    mae = TouchMAE(TINY)
    img = torch.randn(2, 3, 56, 56, dtype=torch.float64)
    w2 = hf_sd["vision_model.embeddings.patch_embedding.weight"].double()
    clip_emb = F.conv2d(img, w2, stride=14)
    for inflate, factor in (("repeat", 3.0), ("mean", 1.0)):
        sd, _ = hf_clip.hf_to_stage1(hf_sd, mae.state_dict(), "clip", inflate=inflate)
        mae.load_state_dict(sd, strict=True)
        enc = mae.encoder.double()  # float64: the check is about the factor, not float32 rounding
        with torch.no_grad():
            ours = enc.patch_embed(enc.prepare_input(img)).squeeze(2)  # (B, D, g, g)
        assert torch.allclose(ours, factor * clip_emb, atol=1e-6), inflate  # "mean" divides in float32
        assert (ours.norm() / clip_emb.norm()).item() == pytest.approx(factor, rel=1e-6), inflate


def test_stage2_towers_equal_hf_clip(hf_model, hf_sd):
    model = AnyTouchModel(TINY).eval()
    fresh_lora_b = model.vision.blocks[0].self_attn.q_proj.lora_B.detach().clone()
    fresh_head = {k: v.clone() for k, v in model.cross_head.state_dict().items()}
    sd, report = hf_clip.hf_to_stage2(hf_sd, model.state_dict(), "clip")
    model.load_state_dict(sd, strict=True)
    px = torch.randn(2, 3, 56, 56)
    ids, mask = _ids()
    with torch.no_grad():
        assert torch.allclose(model.encode_vision(px), _features(hf_model.get_image_features(pixel_values=px)), atol=1e-5)
        assert torch.allclose(model.encode_text(ids, mask),
                              _features(hf_model.get_text_features(input_ids=ids, attention_mask=mask)), atol=1e-5)
    # the vision tower is plain CLIP, not the touch encoder; the touch model is the stage-1 init
    assert torch.equal(model.touch.encoder.pos_embed, hf_sd["vision_model.embeddings.position_embedding.weight"])
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert "logit_scale" in report.ignored_keys()
    assert torch.equal(model.vision.blocks[0].self_attn.q_proj.lora_B, fresh_lora_b) and not fresh_lora_b.any()
    assert "vision.blocks.1.self_attn.out_proj.lora_A" in report.fresh_keys()
    for k, v in fresh_head.items():
        assert torch.equal(getattr(model.cross_head, k), v)


def test_stage2_from_stage1_state(hf_sd):
    mae = TouchMAE(TINY)
    model = AnyTouchModel(TINY)
    sd, report = hf_clip.hf_to_stage2(hf_sd, model.state_dict(), "clip", touch_state=mae.state_dict())
    for k, v in mae.state_dict().items():
        assert torch.equal(sd["touch." + k], v), k
    assert torch.equal(sd["vision.pos_embed"], hf_sd["vision_model.embeddings.position_embedding.weight"])


def test_position_ids_tolerated_and_reported(hf_sd):
    sd = dict(hf_sd)
    sd["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    conv, report = hf_clip.hf_to_stage2(sd, AnyTouchModel(TINY).state_dict(), "clip")
    ignored = dict(report.ignored)
    assert "position_ids" in ignored["vision_model.embeddings.position_ids"]
    assert "text_model.embeddings.position_ids" in ignored
    assert not any("position_ids" in k for k in conv)


def test_unknown_key_refused(hf_sd):
    sd = dict(hf_sd)
    sd["vision_model.extra_adapter.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="vision_model.extra_adapter.weight"):
        hf_clip.hf_to_stage1(sd, TouchMAE(TINY).state_dict(), "clip")


@pytest.mark.parametrize("drop", ["text_model.encoder.layers.1.", "vision_model.encoder.layers.1.mlp.", "text_projection"])
def test_missing_clip_keys_are_an_error_not_a_fresh_init(hf_sd, drop):
    sd = {k: v for k, v in hf_sd.items() if not k.startswith(drop)}
    with pytest.raises(CheckpointMismatchError, match="missing"):
        hf_clip.hf_to_stage2(sd, AnyTouchModel(TINY).state_dict(), "clip")


def test_other_architecture_names_key_and_shapes(hf_sd):
    from anytouch.models.config import get_arch

    small = TouchMAE(get_arch("small")).state_dict()
    with pytest.raises(CheckpointMismatchError) as e:
        hf_clip.hf_to_stage1(hf_sd, small, "clip.bin")
    msg = str(e.value)
    assert "clip.bin" in msg and "'encoder.cls_token'" in msg and "(64,)" in msg and "(128,)" in msg


def test_arch_from_state_dict(hf_sd):
    with pytest.warns(UserWarning, match="head count is not stored"):
        tower = hf_clip.tower_from_shapes(hf_sd, "vision_model.")
    assert (tower.width, tower.layers, tower.mlp_width, tower.patch_size, tower.image_size) == (64, 2, 128, 14, 56)
    assert tower.heads == 1  # width // 64: head counts are not stored in the weights
    # a 32-wide text tower cannot have 64-wide heads: inference refuses and asks for the config
    with pytest.raises(ValueError, match="32-wide.*config="), pytest.warns(UserWarning, match="head count"):
        hf_clip.arch_from_hf_state_dict(hf_sd)
    sd = {k: v for k, v in hf_sd.items() if not k.startswith("text_")}
    with pytest.warns(UserWarning, match="head count is not stored"):
        arch = hf_clip.arch_from_hf_state_dict(sd)
    assert arch.touch == arch.vision == tower and arch.projection_dim == 32


# ----------------------------------------------------------------------------------------------------- open_clip
@pytest.fixture(scope="module")
def open_clip_model():
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    m = open_clip.model.CLIP(
        embed_dim=32,
        vision_cfg=dict(image_size=56, layers=2, width=64, head_width=32, mlp_ratio=2.0, patch_size=14),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2, mlp_ratio=2.0),
    )
    return _perturb(m, 2)


def test_open_clip_to_hf_matches_both_libraries(open_clip_model):
    oc_sd = open_clip_model.state_dict()
    hf_sd, _ = open_clip_to_hf(oc_sd, "oc.pt")
    cfg = {k: v for k, v in clip_config_dict().items() if k not in ("architectures", "model_type")}
    hf = transformers.CLIPModel(transformers.CLIPConfig(**cfg)).eval()
    hf.load_state_dict(hf_sd, strict=True)
    # fused in_proj split as q, k, v; projections transposed
    w = oc_sd["visual.transformer.resblocks.1.attn.in_proj_weight"]
    assert torch.equal(hf_sd["vision_model.encoder.layers.1.self_attn.k_proj.weight"], w[64:128])
    assert torch.equal(hf_sd["visual_projection.weight"], oc_sd["visual.proj"].t())
    px = torch.randn(2, 3, 56, 56)
    ids, mask = _ids()
    with torch.no_grad():
        assert torch.allclose(_features(hf.get_image_features(pixel_values=px)), open_clip_model.encode_image(px), atol=1e-5)
        assert torch.allclose(_features(hf.get_text_features(input_ids=ids, attention_mask=mask)),
                              open_clip_model.encode_text(ids), atol=1e-5)


def test_open_clip_and_hf_give_identical_inits(open_clip_model):
    oc_sd = open_clip_model.state_dict()
    hf_sd, _ = open_clip_to_hf(oc_sd, "oc.pt")
    target = AnyTouchModel(TINY).state_dict()
    a, _ = hf_clip.hf_to_stage2(hf_sd, target, "via open_clip")
    cfg = {k: v for k, v in clip_config_dict().items() if k not in ("architectures", "model_type")}
    hf = transformers.CLIPModel(transformers.CLIPConfig(**cfg))
    hf.load_state_dict(hf_sd, strict=True)
    b, _ = hf_clip.hf_to_stage2(hf.state_dict(), target, "hf")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_open_clip_unknown_tower_refused(open_clip_model):
    sd = dict(open_clip_model.state_dict())
    sd["visual.trunk.stem.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="visual.trunk.stem.weight"):
        open_clip_to_hf(sd, "oc.pt")
