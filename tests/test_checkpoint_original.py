"""The original AnyTouch stage-1 / stage-2 layouts (docs/original/checkpoints.md#stage-1-file, #stage-2-file): import,
LoRA merge, export, arch inference."""
import dataclasses
import os

import pytest
import torch
from checkpoint_fixtures import (
    TINY, make_state_dict, reference_touch_feature, save_original, stage1_layout, stage2_layout, write_clip_config,
)

import anytouch
from anytouch.checkpoint import original
from anytouch.checkpoint.common import CheckpointMismatchError, on_meta
from anytouch.models import AnyTouchModel, TouchMAE
from anytouch.models.config import get_arch

S2 = "touch_mae_model."


@pytest.fixture(scope="module")
def s1(tmp_path_factory):
    sd = make_state_dict(stage1_layout(), seed=0)
    sd["touch_model.embeddings.position_ids"] = torch.arange(17)[None]  # stray buffer from old transformers
    return sd, save_original(tmp_path_factory.mktemp("orig") / "stage1.pth", sd)


@pytest.fixture(scope="module")
def s2(tmp_path_factory):
    sd = make_state_dict(stage2_layout(), seed=1)  # LoRA B non-zero: the merge matters
    return sd, save_original(tmp_path_factory.mktemp("orig") / "stage2.pth", sd)


def test_stage1_loads_and_reproduces_the_reference_feature(s1):
    sd, path = s1
    model, report = anytouch.load_model(path, config=TINY, return_report=True)
    assert not model.training and not model.has_towers
    img = torch.randn(3, 3, 56, 56)
    for sensor in (0, 4, -1):
        with torch.no_grad():
            ours = model.encode_touch(img, sensor)
        ref = reference_touch_feature(sd, img, sensor)
        assert torch.allclose(ours, ref, atol=1e-5), sensor
    with pytest.raises(RuntimeError, match="stage-1"):
        model.encode_text(["a rough surface"])
    with pytest.raises(RuntimeError, match="stage-1"):
        model.encode_vision(torch.zeros(1, 3, 56, 56))
    # every mapped tensor landed where the table says
    got = model.touch.state_dict()
    assert torch.equal(got["encoder.patch_embed.weight"], sd["video_patch_embedding.weight"])
    assert torch.equal(got["encoder.sensor_tokens"], sd["sensor_token"])
    assert torch.equal(got["decoder_blocks.0.self_attn.v_proj.bias"], sd["touch_decoder_blocks.0.attention.attention.value.bias"])
    assert torch.equal(got["decoder_blocks.0.mlp.fc2.weight"], sd["touch_decoder_blocks.0.output.dense.weight"])
    assert torch.equal(got["head_video.weight"], sd["decoder_pred_video.weight"])
    assert torch.equal(got["decoder_pos_embed"], sd["decoder_pos_embed"])
    ignored = dict(report.ignored)
    assert set(ignored) == {"touch_model.embeddings.patch_embedding.weight", "video_position_embedding.weight",
                            "touch_model.embeddings.position_ids"}
    assert "unused" in ignored["video_position_embedding.weight"] and "position_ids" in ignored["touch_model.embeddings.position_ids"]


def test_stage2_lora_merge_equals_formula(s2):
    sd, path = s2
    arch = dataclasses.replace(TINY, lora_alpha=8.0)  # alpha/r = 2: a wrong scale cannot pass
    model = anytouch.load_model(path, config=arch)
    assert model.vision.lora_rank == 0  # merged
    for i in range(TINY.vision.layers):
        for x in ("q", "k", "v", "out"):
            pre = f"vision_model.encoder.base_model.model.layers.{i}.self_attn.{x}_proj."
            w, a, b = sd[pre + "base_layer.weight"], sd[pre + "lora_A.default.weight"], sd[pre + "lora_B.default.weight"]
            expect = w.double() + 2.0 * (b.double() @ a.double())
            got = getattr(model.vision.blocks[i].self_attn, f"{x}_proj")
            assert torch.allclose(got.weight.double(), expect, atol=1e-6), (i, x)
            assert torch.equal(got.bias, sd[pre + "base_layer.bias"])


def test_stage2_merged_equals_unmerged_and_touch_matches_reference(s2):
    sd, path = s2
    merged, report = anytouch.load_model(path, config=TINY, return_report=True)
    lora = anytouch.load_model(path, config=TINY, merge_lora=False)
    assert lora.vision.lora_rank == TINY.lora_rank
    px = torch.randn(2, 3, 56, 56)
    img = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.allclose(merged.encode_vision(px), lora.encode_vision(px), atol=1e-5)
        assert torch.allclose(merged.encode_touch(img, 1), reference_touch_feature(sd, img, 1, prefix=S2), atol=1e-5)
        enc = anytouch.load_encoder(path, config=TINY)
        assert torch.allclose(enc(img, 1), merged.encode_touch(img, 1), atol=1e-6)
    assert torch.equal(merged.logit_scale, sd["logit_scale"])
    assert torch.equal(merged.cross_head.weight, sd["cross_sensor_head.weight"])
    assert torch.equal(merged.text.proj.weight, sd["text_projection.weight"])
    assert torch.equal(merged.text.token_embed.weight, sd["text_model.embeddings.token_embedding.weight"])
    assert report.format == "original_stage2"
    assert f"{S2}video_position_embedding.weight" in report.ignored_keys()


def test_stage1_file_into_towers_is_refused(s1):
    sd, _ = s1
    with pytest.raises(ValueError, match="stage-1 checkpoint"):
        original.from_original(sd, AnyTouchModel(TINY).state_dict(), "stage1.pth")


def test_another_architecture_names_first_key_and_shapes(s1):
    _, path = s1
    with pytest.raises(CheckpointMismatchError) as e:
        anytouch.load_encoder(path, config="small")
    msg = str(e.value)
    assert "stage1.pth" in msg and "'cls_token'" in msg and "'touch_model.embeddings.class_embedding'" in msg
    assert "(64,)" in msg and "(128,)" in msg


def test_arch_inference_from_shapes_and_clip_config(s2, tmp_path):
    sd, path = s2
    with pytest.warns(UserWarning, match="head count is not stored"):
        arch = original.arch_from_original(sd, towers=False)
    t = arch.touch
    assert (t.width, t.layers, t.mlp_width, t.patch_size, t.image_size, t.heads) == (64, 2, 128, 14, 56, 1)
    d = arch.decoder
    assert (d.width, d.layers, d.mlp_width, d.heads) == (32, 1, 64, 16)
    assert (arch.num_sensors, arch.tokens_per_sensor, arch.projection_dim, arch.num_frames, arch.pred_frames) == (10, 5, 32, 3, 4)
    # with the CLIP config.json the towers (head counts included) come from it; decoder and LoRA rank from tensors
    cfg = write_clip_config(tmp_path / "clip")
    arch = original.arch_from_original(sd, cfg)
    assert arch.touch.heads == arch.vision.heads == 2 and arch.text.heads == 2
    assert arch.lora_rank == 4 and arch.lora_alpha == 4.0 and arch.decoder.width == 32
    model = anytouch.load_model(path, config=tmp_path / "clip")
    ref = anytouch.load_model(path, config=dataclasses.replace(TINY, decoder=dataclasses.replace(TINY.decoder, heads=16)))
    img = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(model.encode_touch(img, 2), ref.encode_touch(img, 2))


def test_stage1_export_reimport_is_identity():
    mae = TouchMAE(TINY)
    ours = mae.state_dict()
    exported = original.to_original_stage1(ours)
    assert list(exported) == [k for k, _, _ in stage1_layout()]  # the original key order
    for k, shape, _ in stage1_layout():
        assert tuple(exported[k].shape) == shape, k
    assert torch.equal(exported["touch_model.embeddings.patch_embedding.weight"], ours["encoder.patch_embed.weight"].sum(1))
    assert torch.equal(exported["video_position_embedding.weight"], ours["encoder.pos_embed"])
    back, _ = original.from_original(exported, ours, "export")
    assert back.keys() == ours.keys()
    for k in ours:
        assert torch.equal(back[k], ours[k]), k


def test_original_stage1_roundtrip_keeps_every_used_tensor(s1):
    sd, _ = s1
    mae_sd, _ = original.from_original(sd, TouchMAE(TINY).state_dict(), "s1")
    again = original.to_original_stage1(mae_sd)
    regenerated = {"touch_model.embeddings.patch_embedding.weight", "video_position_embedding.weight"}
    assert set(again) == set(sd) - {"touch_model.embeddings.position_ids"}
    for k in set(again) - regenerated:
        assert torch.equal(again[k], sd[k]), k


def test_stage2_export_reimport(s2):
    sd, _ = s2
    target = AnyTouchModel(TINY).state_dict()
    with_lora, _ = original.from_original(sd, target, "s2", lora_scale=None)
    exported = original.to_original_stage2(with_lora)
    assert list(exported) == [k for k, _, _ in stage2_layout()]
    regenerated = {S2 + "touch_model.embeddings.patch_embedding.weight", S2 + "video_position_embedding.weight"}
    for k in set(sd) - regenerated:
        assert torch.equal(exported[k], sd[k]), k
    # a merged model exports base = merged weight, Kaiming A, zero B; re-importing (merging) gives it back
    merged_target = AnyTouchModel(TINY, lora=False).state_dict()
    merged, _ = original.from_original(sd, merged_target, "s2", lora_scale=1.0)
    exported = original.to_original_stage2(merged, lora_rank=4)
    b = exported["vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.lora_B.default.weight"]
    a = exported["vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.lora_A.default.weight"]
    assert b.shape == (64, 4) and not b.any() and a.shape == (4, 64) and a.abs().sum() > 0
    again, _ = original.from_original(exported, merged_target, "export", lora_scale=1.0)
    for k in merged:
        assert torch.equal(again[k], merged[k]), k


def test_full_size_layouts_match_the_original():
    """Key counts and value counts of docs/original/checkpoints.md#stage-1-file, #stage-2-file at ViT-L/14 (meta
    tensors: no memory)."""
    arch = get_arch("anytouch-l14")
    s1 = original.to_original_stage1(on_meta(lambda: TouchMAE(arch)).state_dict())
    assert len(s1) == 533 and sum(v.numel() for v in s1.values()) == 333_341_052
    model_sd = on_meta(lambda: AnyTouchModel(arch)).state_dict()
    s2 = original.to_original_stage2(model_sd)
    assert len(s2) == 1317 and round(sum(v.numel() for v in s2.values()) / 1e6, 1) == 764.1
    assert tuple(s2["vision_model.encoder.base_model.model.layers.23.self_attn.out_proj.lora_B.default.weight"].shape) == (1024, 16)
    back, _ = original.from_original(s2, model_sd, "meta", lora_scale=None)
    assert back.keys() == model_sd.keys()


@pytest.mark.weights
def test_released_checkpoint():
    """The released checkpoint (``$ANYTOUCH_CKPT``) with the DataComp CLIP config (``$ANYTOUCH_CLIP_DIR``)."""
    ckpt, clip = os.environ.get("ANYTOUCH_CKPT"), os.environ.get("ANYTOUCH_CLIP_DIR")
    if not ckpt or not clip:
        pytest.skip("set ANYTOUCH_CKPT and ANYTOUCH_CLIP_DIR")
    from anytouch.checkpoint.io import ORIGINAL_ALLOW, safe_load

    sd = original.unwrap_container(safe_load(ckpt, allow=ORIGINAL_ALLOW))
    n = len([k for k in sd if not k.endswith("position_ids")])
    assert n in (533, 1317), n
    if n == 1317:
        assert len([k for k in sd if k.startswith(S2) and not k.endswith("position_ids")]) == 533
    model = anytouch.load_model(ckpt, config=clip)
    with torch.no_grad():
        assert model.encode_touch(torch.zeros(2, 3, 224, 224), "digit").shape == (2, 768)
        assert model.encode_touch(torch.zeros(2, 4, 3, 224, 224), -1, pooling="global").shape == (2, 768)
        if model.has_towers:
            assert model.encode_vision(torch.zeros(2, 3, 224, 224)).shape == (2, 768)
            assert model.encode_text(["a smooth surface"]).shape == (1, 768)
