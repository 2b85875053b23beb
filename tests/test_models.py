"""Model tests on the tiny preset: token layout, sensor tokens, patch-embedding equivalences
(docs/original/architecture.md#invariants-and-equivalences), masking, the MAE losses against a direct computation of
docs/original/architecture.md#mae-losses, the decoder's sin-cos table, LoRA, and HF CLIP equivalence."""
import math

import pytest
import torch
import torch.nn.functional as F

from anytouch.models import AnyTouchModel, TouchMAE, get_arch, random_masking, sincos_pos_embed_2d
from anytouch.models.layers import LoRALinear
from anytouch.sensors import SENSOR_IDS, sensor_id

torch.manual_seed(0)


@pytest.fixture(scope="module")
def arch():
    return get_arch("tiny")


@pytest.fixture(scope="module")
def mae(arch):
    torch.manual_seed(0)
    return TouchMAE(arch).eval()


def test_token_layout_and_shapes(mae, arch):
    enc = mae.encoder
    n = arch.touch.num_patches
    img = torch.randn(3, 3, 56, 56)
    clip = torch.randn(3, 5, 3, 56, 56)
    tok, mask, restore = enc.forward_features(img, 0)
    assert tok.shape == (3, 1 + 5 + n, arch.touch.width) and mask is None and restore is None
    tok, mask, restore = enc.forward_features(clip, 0, mask_ratio=0.75)
    keep = int(n * 0.25)
    assert tok.shape == (3, 6 + keep, arch.touch.width)
    assert mask.shape == (3, n) and torch.all(mask.sum(1) == n - keep)
    assert enc(img, "gelsight").shape == (3, arch.projection_dim)
    assert enc(clip, [0, 1, -1], pooling="global").shape == (3, arch.projection_dim)
    # a clip's frames beyond the third are never seen
    clip2 = clip.clone()
    clip2[:, 3:] = 0
    assert torch.allclose(enc(clip, 1), enc(clip2, 1))
    with pytest.raises(ValueError, match="touch must be"):
        enc(torch.randn(2, 2, 3, 56, 56), 0)
    with pytest.raises(ValueError, match="56x56"):
        enc(torch.randn(2, 3, 64, 64), 0)


def test_sensor_tokens_by_name_and_universal(mae):
    enc = mae.encoder
    img = torch.randn(2, 3, 56, 56)
    assert sensor_id("GelSight-Mini") == 3 and sensor_id("universal") == -1 and sensor_id("DuraGel") == 4
    with pytest.raises(ValueError, match="gelsight, digit"):
        sensor_id("gelsite")
    assert torch.equal(enc(img, "digit"), enc(img, 1))
    assert torch.equal(enc(img, -1), enc(img, 9))  # -1 is the last slot
    assert torch.equal(enc(img, "universal"), enc(img, torch.tensor([-1, -1])))
    assert not torch.allclose(enc(img, 0), enc(img, 1))
    # the sensor tokens are inserted right after CLS, unpositioned: read them back from the layer input
    seen = {}
    h = enc.norm_pre.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
    enc(img, [2, -1])
    h.remove()
    assert torch.equal(seen["x"][0, 1:6], enc.sensor_tokens[2])
    assert torch.equal(seen["x"][1, 1:6], enc.sensor_tokens[9])
    with pytest.raises(ValueError, match="out of range"):
        enc(img, 10)
    assert set(SENSOR_IDS) == {"gelsight", "digit", "gelslim", "gelsight_mini", "duragel", "dm", "universal"}


def test_patch_embedding_equivalences(mae):
    """docs/original/architecture.md#invariants-and-equivalences: image = conv2d(img, W.sum(1)); clip [f0,f1,f2] = Σ_t
    conv2d(f_t, W[:, t])."""
    enc = mae.encoder
    w = enc.patch_embed.weight  # (D, frames, rgb, p, p)
    p = enc.patch_size
    img = torch.randn(2, 3, 56, 56)
    ours = enc.patch_embed(enc.prepare_input(img)).flatten(2)
    ref = F.conv2d(img, w.sum(dim=1), stride=p).flatten(2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    clip = torch.randn(2, 4, 3, 56, 56)
    ours = enc.patch_embed(enc.prepare_input(clip)).flatten(2)
    ref = sum(F.conv2d(clip[:, t], w[:, t], stride=p) for t in range(3)).flatten(2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_random_masking_matches_mae_convention():
    x = torch.arange(2 * 8 * 1, dtype=torch.float).view(2, 8, 1)
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4]] * 2)
    kept, mask, restore = random_masking(x, 0.75, noise)
    # argsort ascending: the two smallest noise values (indices 1, 5) are kept, in that order
    assert kept[0, :, 0].tolist() == [1.0, 5.0]
    assert mask[0].tolist() == [1, 0, 1, 1, 1, 0, 1, 1]
    assert torch.equal(torch.argsort(torch.argsort(noise, 1), 1), restore)


def test_decoder_sincos_table():
    dim, grid = 16, 4
    t = sincos_pos_embed_2d(dim, grid)
    assert t.shape == (1 + grid * grid, dim) and torch.all(t[0] == 0)
    q = dim // 4
    for n in (0, 5, 14):
        row, col = divmod(n, grid)
        for i in range(q):
            w = 10000 ** (-i / q)
            assert math.isclose(t[1 + n, i], math.sin(col * w), abs_tol=1e-6)  # first half: column
            assert math.isclose(t[1 + n, q + i], math.cos(col * w), abs_tol=1e-6)
            assert math.isclose(t[1 + n, 2 * q + i], math.sin(row * w), abs_tol=1e-6)  # second half: row
            assert math.isclose(t[1 + n, 3 * q + i], math.cos(row * w), abs_tol=1e-6)


def _naive_patchify(img, p):
    """(3,H,W) -> list of patch vectors ordered (row-in-patch, col-in-patch, channel), patches in raster order."""
    _, h, w = img.shape
    out = []
    for r in range(h // p):
        for c in range(w // p):
            out.append(torch.stack([img[ch, r * p + i, c * p + j] for i in range(p) for j in range(p) for ch in range(3)]))
    return torch.stack(out)


def test_patchify_order_and_roundtrip(mae):
    img = torch.randn(2, 3, 56, 56)
    pt = mae.patchify(img)
    torch.testing.assert_close(pt[1], _naive_patchify(img[1], 14))
    torch.testing.assert_close(mae.unpatchify(pt), img)
    clip = torch.randn(2, 4, 3, 56, 56)
    assert mae.patchify(clip).shape == (2, 16, 4, 588)
    torch.testing.assert_close(mae.unpatchify(mae.patchify(clip)), clip)


def test_mae_losses_match_a_direct_computation(mae):
    b, n = 2, 16
    noise = torch.rand(b, n)
    img = torch.randn(b, 3, 56, 56)
    out = mae(img, [0, 3], noise=noise)
    pred, mask = out["pred"], out["mask"]
    assert pred.shape == (b, n, 588) and torch.all(mask.sum(1) == 12)
    # the same noise gives the same mask
    assert torch.equal(mae(img, [0, 3], noise=noise)["mask"], mask)
    num = den = 0.0
    for i in range(b):
        tgt = _naive_patchify(img[i], 14)
        for j in range(n):
            if mask[i, j] == 1:
                num += ((pred[i, j] - tgt[j]) ** 2).mean()
                den += 1
    torch.testing.assert_close(out["loss"], num / den)

    clip = torch.randn(b, 4, 3, 56, 56)
    out = mae(clip, 1, noise=noise)
    pred, mask = out["pred"], out["mask"]
    assert pred.shape == (b, n, 4, 588)
    rec_num = rec_den = pred_sum = 0.0
    for i in range(b):
        tgts = [_naive_patchify(clip[i, f], 14) for f in range(4)]
        for j in range(n):
            per_frame = [((pred[i, j, f] - tgts[f][j]) ** 2).mean() for f in range(4)]
            if mask[i, j] == 1:
                rec_num += sum(per_frame[:3]) / 3
                rec_den += 1
            pred_sum += per_frame[3]
    torch.testing.assert_close(out["loss_recon"], rec_num / rec_den)
    torch.testing.assert_close(out["loss_pred"], pred_sum / (b * n))
    torch.testing.assert_close(out["loss"], rec_num / rec_den + pred_sum / (b * n))
    with pytest.raises(ValueError, match="4 frames"):
        mae(torch.randn(2, 3, 3, 56, 56), 0)


def test_decoder_sees_projected_tokens_and_restores_order(mae):
    """Unmasked decoding: no mask token is used, so changing it leaves the prediction unchanged."""
    img = torch.randn(1, 3, 56, 56)
    latent, mask, restore = mae.forward_encoder(img, 0, mask_ratio=0.0)
    assert latent.shape[-1] == mae.arch.projection_dim and mask.sum() == 0
    p1 = mae.forward_decoder(latent, restore, video=False)
    with torch.no_grad():
        saved = mae.mask_token.clone()
        mae.mask_token.add_(1.0)
        p2 = mae.forward_decoder(latent, restore, video=False)
        mae.mask_token.copy_(saved)
    torch.testing.assert_close(p1, p2)


def _saved_tensor_count(fn) -> int:
    """How many tensors autograd saves for backward while ``fn()`` runs."""
    count = 0

    def pack(t):
        nonlocal count
        count += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return count


def test_grad_checkpointing_same_gradients(arch, monkeypatch):
    import anytouch.models.layers as layers

    torch.manual_seed(1)
    m = TouchMAE(arch).train()
    img, noise = torch.randn(2, 3, 56, 56), torch.rand(2, 16)
    m(img, 0, noise=noise)["loss"].backward()
    g1 = m.encoder.blocks[0].mlp.fc1.weight.grad.clone()
    saved_plain = _saved_tensor_count(lambda: m(img, 0, noise=noise))
    m.zero_grad()
    calls = []
    real = layers.checkpoint
    monkeypatch.setattr(layers, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    m.encoder.set_grad_checkpointing(True)
    m(img, 0, noise=noise)["loss"].backward()
    torch.testing.assert_close(m.encoder.blocks[0].mlp.fc1.weight.grad, g1)
    assert len(calls) == arch.touch.layers  # every encoder block went through torch.utils.checkpoint
    # and activations really are dropped: only the block inputs are kept for the recomputation
    assert _saved_tensor_count(lambda: m(img, 0, noise=noise)) < saved_plain
    with torch.no_grad():  # no checkpointing (nothing to save) outside training with grad
        calls.clear()
        m(img, 0, noise=noise)
        assert not calls


def test_lora_identity_at_init_and_merge():
    torch.manual_seed(0)
    lin = LoRALinear(8, 6, rank=2, alpha=4.0)
    x = torch.randn(3, 8)
    torch.testing.assert_close(lin(x), F.linear(x, lin.weight, lin.bias))  # B = 0 at init
    with torch.no_grad():
        lin.lora_B.normal_()
    expected_w = lin.weight + 2.0 * lin.lora_B @ lin.lora_A
    y = lin(x)
    lin.merge_()
    torch.testing.assert_close(lin.weight, expected_w)
    torch.testing.assert_close(lin(x), y, rtol=1e-5, atol=1e-5)
    assert not hasattr(lin, "lora_A") and "lora_A" not in dict(lin.named_parameters())


def test_stage1_model_has_no_towers(arch):
    m = AnyTouchModel(arch, towers=False)
    assert m.encode_touch(torch.randn(1, 3, 56, 56), 0).shape == (1, arch.projection_dim)
    with pytest.raises(RuntimeError, match="stage-1"):
        m.encode_vision(torch.randn(1, 3, 56, 56))
    with pytest.raises(RuntimeError, match="stage-1"):
        m.encode_text(["a rough surface"])


def test_stage2_trainable_sets(arch):
    m = AnyTouchModel(arch)
    m.set_stage2_trainable()
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert not any(n.startswith("text.") for n in trainable)
    assert "vision.blocks.0.self_attn.q_proj.lora_A" in trainable
    assert "vision.blocks.0.self_attn.q_proj.weight" not in trainable
    assert "vision.blocks.0.mlp.fc1.weight" not in trainable
    assert {"vision.patch_embed.weight", "vision.norm_pre.weight", "vision.proj.weight", "logit_scale",
            "cross_head.weight", "touch.encoder.patch_embed.weight"} <= trainable
    assert "touch.decoder_pos_embed" not in dict(m.named_parameters())  # a fixed buffer


def _hf_tiny_clip(arch):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPConfig(
        projection_dim=arch.projection_dim,
        vision_config=dict(hidden_size=arch.vision.width, intermediate_size=arch.vision.mlp_width,
                           num_hidden_layers=arch.vision.layers, num_attention_heads=arch.vision.heads,
                           image_size=arch.vision.image_size, patch_size=arch.vision.patch_size, hidden_act="gelu"),
        text_config=dict(hidden_size=arch.text.width, intermediate_size=arch.text.mlp_width,
                         num_hidden_layers=arch.text.layers, num_attention_heads=arch.text.heads, hidden_act="gelu",
                         eos_token_id=2, bos_token_id=0, pad_token_id=1),
    )
    torch.manual_seed(3)
    return transformers.CLIPModel(cfg).eval()


def _copy_hf_block(ours, hf_layer):
    for a, b in (("layer_norm1", "layer_norm1"), ("layer_norm2", "layer_norm2"), ("mlp.fc1", "mlp.fc1"),
                 ("mlp.fc2", "mlp.fc2"), ("self_attn.q_proj", "self_attn.q_proj"), ("self_attn.k_proj", "self_attn.k_proj"),
                 ("self_attn.v_proj", "self_attn.v_proj"), ("self_attn.out_proj", "self_attn.out_proj")):
        src, dst = hf_layer.get_submodule(b), ours.get_submodule(a)
        dst.weight.data.copy_(src.weight.data)
        dst.bias.data.copy_(src.bias.data)


def test_towers_match_transformers_clip(arch):
    """Our vision and text towers reproduce HF CLIP (exact GELU, legacy argmax text pooling)."""
    hf = _hf_tiny_clip(arch)
    m = AnyTouchModel(arch, lora=False).eval()
    v, hv = m.vision, hf.vision_model
    v.cls_token.data.copy_(hv.embeddings.class_embedding.data)
    v.patch_embed.weight.data.copy_(hv.embeddings.patch_embedding.weight.data)
    v.pos_embed.data.copy_(hv.embeddings.position_embedding.weight.data)
    for ours, theirs in ((v.norm_pre, hv.pre_layrnorm), (v.norm_post, hv.post_layernorm)):
        ours.load_state_dict(theirs.state_dict())
    for i, layer in enumerate(hv.encoder.layers):
        _copy_hf_block(v.blocks[i], layer)
    v.proj.weight.data.copy_(hf.visual_projection.weight.data)
    pix = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(m.encode_vision(pix), hf.visual_projection(hf.vision_model(pixel_values=pix).pooler_output), rtol=1e-4, atol=1e-5)

    t, ht = m.text, hf.text_model
    t.token_embed.weight.data.copy_(ht.embeddings.token_embedding.weight.data)
    t.pos_embed.data.copy_(ht.embeddings.position_embedding.weight.data)
    t.norm_final.load_state_dict(ht.final_layer_norm.state_dict())
    for i, layer in enumerate(ht.encoder.layers):
        _copy_hf_block(t.blocks[i], layer)
    t.proj.weight.data.copy_(hf.text_projection.weight.data)
    from anytouch.tokenizer import tokenize

    ids, mask = tokenize(["a smooth hard surface", "soft fabric with fine ridges and bumps"])
    with torch.no_grad():
        ref = hf.text_projection(hf.text_model(input_ids=ids, attention_mask=mask).pooler_output)
        torch.testing.assert_close(m.encode_text(ids, mask), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.encode_text(["a smooth hard surface", "soft fabric with fine ridges and bumps"]),
                                   ref, rtol=1e-4, atol=1e-5)


def test_touch_encoder_refuses_unnormalised_integer_input(mae):
    raw = torch.randint(0, 256, (2, 3, 56, 56), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"torch.uint8.*anytouch.preprocess_touch"):
        mae.encoder(raw, 0)
    with pytest.raises(TypeError, match="floating-point"):
        mae.encoder(raw.long().unsqueeze(1).expand(-1, 3, -1, -1, -1), 0)
    assert mae.encoder(raw.float() / 255, 0).shape == (2, mae.encoder.proj.out_features)


def test_encode_text_range_checks_token_ids(arch):
    m = AnyTouchModel(arch, lora=False).eval()
    vocab = arch.text.vocab_size
    ids = torch.zeros(2, 5, dtype=torch.long)
    ids[1, 3] = vocab + 7
    with pytest.raises(ValueError, match=rf"max id {vocab + 7}.*vocabulary size is {vocab}"):
        m.encode_text(ids)
    with pytest.raises(ValueError, match="min id -1"):
        m.encode_text(torch.full((1, 5), -1))
    ids[1, 3] = vocab - 1
    assert m.encode_text(ids).shape == (2, arch.projection_dim)
    ids[1, 3] = vocab + 7  # in training (no host sync) the loaders have checked the ids; the embedding still refuses
    with pytest.raises(IndexError):
        m.train().encode_text(ids)
