"""Stage 2 (anytouch/train/stage2.py, anytouch.losses.Stage2Objective): the recipe config, initialisation from
stage-1 checkpoints (ours and original), LoRA at initialisation, the universal-sensor mask shared by a cross
triplet, the objective against its parts, and a short in-process run: the frozen text tower, the logged names,
and the stage-2 checkpoint through anytouch.load_model and the original stage-2 layout."""
import json
import math
from pathlib import Path

import pytest
import torch

import anytouch.api as api
from anytouch.checkpoint import save_checkpoint
from anytouch.checkpoint.hf_clip import TEXT_TABLE, VISION_TABLE
from anytouch.checkpoint.original import to_original_stage1, to_original_stage2
from anytouch.config import load_config
from anytouch.data.device_aug import IDENTITY
from anytouch.engine.checkpointing import LAST
from anytouch.engine.dist import DistEnv
from anytouch.losses import Stage2Objective, alignment_loss
from anytouch.models import AnyTouchModel, TouchMAE, VisionTower, get_arch
from anytouch.preprocess import CLIP_MEAN, CLIP_STD
from anytouch.train.stage1 import Stage1Config
from anytouch.train.stage2 import Stage2Config, Stage2Trainer, build_model, load_stage1_touch, prepare_batch

REPO = Path(__file__).resolve().parents[1]
TINY = get_arch("tiny")
# a small synthetic run in which each of the four loaders has a batch or two
SMALL_DATA = [
    "data=synthetic", "data.num_workers=0", "data.synthetic.num_samples=4", "data.synthetic.cross_samples=4", "data.synthetic.render_size=32",
    "data.repeats={tacquad: 1, tag: 1, of_real: 0, visgel: 0, cloth: 0, octopi: 0, ssvtp: 0, tvl: 0, ycb_slide: 0}",
    "train.batch_size={image: 4, image_cross: 2, video: 4, video_cross: 2}",
]


def stage2_cfg(*overrides):
    return load_config(Stage2Config, [REPO / "configs" / "stage2.yaml"], ["model=tiny", *overrides])


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory):
    torch.manual_seed(1)
    mae = TouchMAE(TINY)
    path = save_checkpoint(tmp_path_factory.mktemp("s1") / "checkpoint-last.pth", mae)
    return path, mae.state_dict()


def test_stage2_yaml_is_the_paper_recipe_and_follows_stage1():
    cfg = load_config(Stage2Config, [REPO / "configs" / "stage2.yaml"])
    t, o, loss = cfg.train, cfg.optim, cfg.loss
    assert (t.epochs, o.lr, o.weight_decay, o.warmup_epochs, tuple(o.betas)) == (12, 2e-4, 0.1, 1, (0.9, 0.99))
    assert t.batch_size == {"image": 64, "image_cross": 32, "video": 64, "video_cross": 32}
    assert (t.beta_start, t.beta_end, t.mask_ratio) == (0.0, 0.75, 0.75)
    assert (loss.alpha_vt, loss.alpha_vl, loss.alpha_lt, loss.cross_alpha) == (1.0, 0.2, 1.0, 0.1)
    assert not loss.halve_touch_text and not loss.gather and loss.max_logit_scale is None
    assert cfg.data.repeats["tag"] == 2 and cfg.data.repeats["octopi"] == 3
    assert {v for k, v in cfg.data.repeats.items() if k not in ("tag", "octopi")} == {1}
    assert (cfg.model.init, cfg.model.init_temp, cfg.run.output_dir) == ("clip", 0.07, "log/output_stage2")
    arch = get_arch(cfg.model.arch)
    assert (arch.lora_rank, arch.lora_alpha) == (16, 16.0)  # LoRA r=16, alpha=16 on the vision tower
    # (docs/original/checkpoints.md#stage-2-file) stage 2 starts where stage 1's recipe leaves its last checkpoint
    s1 = load_config(Stage1Config, [REPO / "configs" / "stage1.yaml"])
    assert Path(cfg.model.stage1_checkpoint) == Path(s1.run.output_dir) / LAST
    tiny = stage2_cfg("data=synthetic")
    assert (tiny.model.arch, tiny.model.init, tiny.data.source) == ("tiny", "random", "synthetic")


def test_build_model_from_our_and_original_stage1_checkpoints(stage1_ckpt, tmp_path):
    path, ref = stage1_ckpt
    original = tmp_path / "orig_stage1.pth"
    torch.save({"model": to_original_stage1(ref), "epoch": 19}, original)
    for ckpt in (path, original):
        torch.manual_seed(5)
        model = build_model(stage2_cfg(f"model.stage1_checkpoint={ckpt}").model, log=lambda s: None)
        for k, v in ref.items():
            assert torch.equal(model.touch.state_dict()[k], v), k
        assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
        assert torch.count_nonzero(model.cross_head.bias) == 0
        assert all(torch.count_nonzero(m.lora_B) == 0 for m in model.vision.lora_modules())
        assert len(model.vision.lora_modules()) == 4 * TINY.vision.layers  # q, k, v, out of every block


def _hf_clip_state(model):
    """An HF CLIP state dict holding ``model``'s vision and text towers (the converter's tables, inverted)."""
    out = {}
    for tower, table in (("vision", VISION_TABLE), ("text", TEXT_TABLE)):
        for k, v in getattr(model, tower).state_dict().items():
            src, dst = next((s, d) for s, d in table if k == d or (d.endswith(".") and k.startswith(d)))
            out[src + k[len(dst):]] = v.clone()
    out["logit_scale"] = torch.tensor(4.6)
    return out


def test_build_model_with_clip_towers(stage1_ckpt, tmp_path):
    torch.manual_seed(7)
    source = AnyTouchModel(TINY, lora=False)
    torch.save(_hf_clip_state(source), tmp_path / "pytorch_model.bin")
    model = build_model(stage2_cfg(f"model.stage1_checkpoint={stage1_ckpt[0]}", "model.init=clip",
                                   f"model.clip_weights={tmp_path}").model, log=lambda s: None)
    sd = model.state_dict()
    for tower in ("vision", "text"):  # fresh CLIP towers (docs/original/checkpoints.md#stage-1-and-clip-to-stage-2 step
    # 1), LoRA A/B on top of the vision one
        for k, v in getattr(source, tower).state_dict().items():
            assert torch.equal(sd[f"{tower}.{k}"], v), k
    for k, v in stage1_ckpt[1].items():  # the touch branch from stage 1, not from CLIP (step 2)
        assert torch.equal(sd[f"touch.{k}"], v), k
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))  # not the file's 4.6 (step 5)
    assert all(torch.count_nonzero(m.lora_B) == 0 for m in model.vision.lora_modules())


def test_stage1_checkpoint_errors_name_the_problem(stage1_ckpt, tmp_path):
    stage2_file = save_checkpoint(tmp_path / "s2.pth", AnyTouchModel(TINY))
    with pytest.raises(ValueError, match="'stage2' checkpoint; stage 2 starts from a stage-1"):
        load_stage1_touch(str(stage2_file), TINY)
    small = save_checkpoint(tmp_path / "small.pth", TouchMAE(get_arch("small")))
    with pytest.raises(ValueError, match="differs in: projection_dim, touch, decoder"):
        load_stage1_touch(str(small), TINY)
    with pytest.raises(ValueError, match="model.init='checkpoint'; expected clip or random"):
        build_model(stage2_cfg(f"model.stage1_checkpoint={stage1_ckpt[0]}", "model.init=checkpoint").model)


def test_lora_at_initialisation_equals_the_base_tower(stage1_ckpt):
    model = build_model(stage2_cfg(f"model.stage1_checkpoint={stage1_ckpt[0]}").model, log=lambda s: None)
    base = VisionTower(TINY.vision, TINY.projection_dim, lora_rank=0)
    base.load_state_dict({k: v for k, v in model.vision.state_dict().items() if ".lora_" not in k})
    pixels = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(model.encode_vision(pixels), base(pixels))
        model.vision.lora_modules()[0].lora_B.add_(0.1)  # the comparison does see the LoRA path
        assert not torch.allclose(model.encode_vision(pixels), base(pixels))


def test_prepare_batch_shares_the_universal_mask_across_the_triplet():
    b = 64
    u8, aug = torch.zeros(b, 3, 8, 8, dtype=torch.uint8), IDENTITY.expand(b, -1)
    batch = {"anchor": u8, "positive": u8 + 255, "negative": u8 + 255, "anchor_aug": aug, "positive_aug": aug,
             "negative_aug": aug, "anchor_sensor": torch.full((b,), 4), "positive_sensor": torch.full((b,), 1),
             "negative_sensor": torch.full((b,), 0)}
    out = prepare_batch(batch, 0.5, torch.Generator().manual_seed(0), None, 16, torch.device("cpu"))
    hit = out["anchor_sensor"] == -1
    assert 10 < int(hit.sum()) < 54
    for role, sid in (("positive", 1), ("negative", 0)):
        assert torch.equal(out[f"{role}_sensor"] == -1, hit)
        assert torch.all(out[f"{role}_sensor"][~hit] == sid)
    # uint8 frames leave normalised by the device step (white: (1 - mean) / std); the parameters are consumed
    assert torch.allclose(out["positive"][:, 0], torch.full((b, 8, 8), (1 - 0.485) / 0.229))
    assert out["anchor"].dtype == torch.float32 and "anchor_aug" not in out
    align = {"touch": u8, "touch_aug": aug, "sensor": torch.full((b,), 2), "vision": u8,
             "vision_flag": torch.ones(b), "text_ids": torch.zeros(b, 77), "text_mask": torch.zeros(b, 77),
             "text_flag": torch.zeros(b), "source": ["x"] * b}
    out = prepare_batch(align, 0.0, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1), 16,
                        torch.device("cpu"))
    assert torch.all(out["sensor"] == 2) and out["noise"].shape == (b, 16) and "source" not in out
    assert torch.allclose(out["vision"][:, 0], torch.full((b, 8, 8), -CLIP_MEAN[0] / CLIP_STD[0]))  # CLIP stats


def _align_batch(video: bool, b: int = 6):
    g = torch.Generator().manual_seed(0)
    touch = torch.randn((b, 4, 3, 56, 56) if video else (b, 3, 56, 56), generator=g)
    ids = torch.randint(1, 1000, (b, 77), generator=g)
    ids[:, 10] = 49407
    ids[:, 11:] = 0
    return {"touch": touch, "sensor": torch.tensor([0, 1, -1, 3, 4, -1]),
            "vision": torch.randn(b, 3, 56, 56, generator=g),
            "vision_flag": torch.tensor([1, 0, 1, 1, 0, 1]), "text_ids": ids, "text_mask": (ids > 0).long(),
            "text_flag": torch.tensor([1, 1, 0, 1, 0, 1]), "noise": torch.rand(b, 16, generator=g)}


@pytest.mark.parametrize("video", [False, True])
def test_alignment_objective_is_align_plus_mae_on_the_same_batch(video):
    torch.manual_seed(0)
    model = AnyTouchModel(TINY)
    objective = Stage2Objective(model, alpha_vt=1.0, alpha_vl=0.2, alpha_lt=1.0, mask_ratio=0.75)
    batch = _align_batch(video)
    vf, tf = batch["vision_flag"].bool(), batch["text_flag"].bool()
    with torch.no_grad():
        out = objective(batch)
        ref = alignment_loss(model.encode_touch(batch["touch"][:, :3] if video else batch["touch"], batch["sensor"]),
                             model.encode_vision(batch["vision"][vf]),
                             model.encode_text(batch["text_ids"][tf], batch["text_mask"][tf]), vf, tf,
                             model.logit_scale)
        mae = model.mae_loss(batch["touch"], batch["sensor"], noise=batch["noise"])
    assert out["loss_align"].item() == pytest.approx(ref["loss"].item(), rel=1e-6)
    assert out["loss_mae"].item() == pytest.approx(mae["loss"].item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(ref["loss"].item() + mae["loss"].item(), rel=1e-6)
    if video:  # the contact frame t is only the MAE's prediction target
    # (docs/original/recipe.md#stage-2-alignment-loss)
        batch["touch"][:, 3] += 1.0
        with torch.no_grad():
            moved = objective(batch)
        assert moved["loss_align"].item() == out["loss_align"].item()
        assert moved["loss_mae"].item() != pytest.approx(out["loss_mae"].item(), rel=1e-3)


def test_cross_objective_equals_three_separate_passes():
    torch.manual_seed(0)
    model = AnyTouchModel(TINY)
    with torch.no_grad():
        model.cross_head.bias.fill_(0.3)
    g = torch.Generator().manual_seed(2)
    batch = {r: torch.randn(5, 3, 3, 56, 56, generator=g) for r in ("anchor", "positive", "negative")}
    batch.update(anchor_sensor=torch.tensor([3, 4, -1, 1, 3]), positive_sensor=torch.tensor([4, 1, -1, 3, 1]),
                 negative_sensor=torch.tensor([0, 2, -1, 0, 1]))
    with torch.no_grad():
        out = Stage2Objective(model, cross_alpha=0.1)(batch)
        feats = [torch.nn.functional.normalize(model.encode_touch(batch[r], batch[f"{r}_sensor"]), dim=-1)
                 for r in ("anchor", "positive", "negative")]
        pos = model.cross_head(feats[0] * feats[1]).squeeze(-1)
        neg = model.cross_head(feats[0] * feats[2]).squeeze(-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ref = 0.1 * (bce(pos, torch.ones(5)) + bce(neg, torch.zeros(5)))
    assert out["loss"].item() == pytest.approx(ref.item(), rel=1e-5)
    assert set(out) == {"loss", "loss_pos", "loss_neg", "acc"}


@pytest.mark.filterwarnings("ignore:cross-sensor:UserWarning")  # tiny synthetic TacQuad: a one-sensor object
def test_short_run_freezes_text_and_writes_a_loadable_stage2_checkpoint(stage1_ckpt, tmp_path):
    out = tmp_path / "run"
    cfg = stage2_cfg(f"model.stage1_checkpoint={stage1_ckpt[0]}", *SMALL_DATA, f"run.output_dir={out}",
                     "train.epochs=1", "train.log_every=1", "optim.lr=1e-3")
    trainer = Stage2Trainer(cfg, DistEnv())
    model = trainer.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in in_optimizer for p in model.text.parameters())
    assert all(id(p) in in_optimizer for n, p in model.vision.named_parameters() if ".lora_" in n)
    assert not any(id(p) in in_optimizer for n, p in model.vision.blocks.named_parameters() if ".lora_" not in n)
    assert min(trainer.stream.num_batches) >= 1
    trainer.fit()
    trainer.close()

    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("text."))
    changed = {k for k in before if not torch.equal(after[k], before[k])}
    assert "touch.encoder.cls_token" in changed and "cross_head.weight" in changed and "logit_scale" in changed
    assert any(".lora_B" in k for k in changed) and "vision.blocks.0.self_attn.q_proj.weight" not in changed

    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    tags = set().union(*records)
    for tag in ("train_loss_image", "train_loss_video", "train_loss_image_cross", "train_loss_video_cross",
                "train_loss_full", "lr", "train_loss_image_mae", "train_loss_video_touch_vision",
                "train_loss_image_cross_pos", "train_acc_video_cross", "logit_scale"):
        assert tag in tags, tag
    assert [r["step"] for r in records] == list(range(1, trainer.steps_per_epoch + 1))

    # our checkpoint: all three encoders through anytouch.load_model, equal to the trained model
    loaded = api.load_model(out / "checkpoint-0.pth")
    ckpt = torch.load(out / LAST, weights_only=True)
    assert ckpt["kind"] == "stage2"
    model.eval()
    touch, pixels = torch.randn(2, 3, 56, 56), torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(loaded.encode_touch(touch, [0, -1]), model.encode_touch(touch, [0, -1]))
        assert torch.equal(loaded.encode_vision(pixels), model.encode_vision(pixels))
        captions = ["a rough surface", "soft"]
        assert torch.equal(loaded.encode_text(captions), model.encode_text(captions))
        # the original stage-2 layout (PEFT names), read back with the LoRA merged into the base weights
        sd = to_original_stage2(ckpt["model"], lora_rank=TINY.lora_rank)
        assert "vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.lora_B.default.weight" in sd
        torch.save({"model": sd}, tmp_path / "orig_stage2.pth")
        merged = api.load_model(tmp_path / "orig_stage2.pth", config="tiny")
        torch.testing.assert_close(merged.encode_vision(pixels), model.encode_vision(pixels), rtol=1e-4, atol=1e-5)
        assert torch.equal(merged.encode_touch(touch, [0, -1]), model.encode_touch(touch, [0, -1]))


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_stage2", REPO / "scripts" / "bench_stage2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_flops_match_params_times_tokens():
    from anytouch.checkpoint.common import on_meta
    from anytouch.models import TextTower

    bench, arch = _bench(), get_arch("anytouch-l14")

    def blocks_estimate(tower, tokens, width, layers):  # 2·(weights)·tokens + the two attention products
        weights = sum(p.numel() for n, p in tower.blocks.named_parameters() if n.endswith("weight") and p.ndim == 2)
        return 2 * weights * tokens + 4 * tokens * tokens * width * layers

    model = on_meta(lambda: AnyTouchModel(arch, lora=False))
    text = on_meta(lambda: TextTower(arch.text, arch.projection_dim))
    parts = bench.stage2_step_flops(arch, "image")
    touch = blocks_estimate(model.touch.encoder, 262, 1024, 24)  # CLS + 5 sensor tokens + 256 patches
    vision = blocks_estimate(model.vision, 257, 1024, 24)
    assert parts["touch_unmasked"] / 3 == pytest.approx(touch, rel=0.01)  # trained: 3x forward
    assert parts["vision"] / 2 == pytest.approx(vision, rel=0.01)  # frozen base weights: no weight gradients
    assert parts["text"] == pytest.approx(blocks_estimate(text, 77, 768, 12), rel=0.01)  # forward only
    assert bench.stage2_step_flops(arch, "video_cross")["total"] == pytest.approx(3 * 3 * touch, rel=0.01)


def test_bench_runs_every_step_kind():
    res = _bench().main(["--preset", "tiny", "--steps", "1", "--warmup", "1", "--align-batch", "4",
                         "--cross-batch", "2", "--device", "cpu"])
    assert set(res["kinds"]) == {"image", "video", "image_cross", "video_cross"}
    assert all(r["samples_per_s"] > 0 for r in res["kinds"].values())
