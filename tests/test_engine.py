"""The training engine (anytouch/engine): LR and universal-sensor schedules, AdamW parameter groups, gradient
accumulation, loader interleaving and resumable sharded sampling, per-sample seeding, RNG state, checkpoint files,
and the analytic FLOP counter."""
import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from anytouch.engine.checkpointing import (
    LAST, find_resume, load_training_checkpoint, save_training_checkpoint,
)
from anytouch.engine.data import EpochSeeded, ShardSampler, build_loader
from anytouch.engine.dist import DistEnv
from anytouch.engine.flops import mae_forward_flops
from anytouch.engine.interleave import Interleaved, interleave_order
from anytouch.engine.optim import build_adamw, param_groups_weight_decay, resolve_lr
from anytouch.engine.rng import rng_state, set_rng_state
from anytouch.engine.schedule import lr_at, replace_with_universal, universal_prob
from anytouch.engine.step import Stepper, resolve_precision
from anytouch.models import TouchMAE, get_arch

TINY = get_arch("tiny")


class AugSet(torch.utils.data.Dataset):
    """Sample i = a fixed tensor plus 'augmentation' noise drawn from torch's global RNG (like torchvision)."""

    def __init__(self, n, tag=0):
        self.n, self.tag = n, tag

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"idx": i, "tag": self.tag, "x": torch.full((2,), float(i)) + torch.rand(2)}


# -- schedules -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("step,expected", [
    (0, 0.0),             # warm-up starts at 0
    (50, 1e-4),           # half-way through the 1-epoch warm-up
    (100, 2e-4),          # end of warm-up: the base LR
    (1050, 1e-4),         # e = 10.5: the middle of the cosine (e - 1) / (20 - 1) = 0.5
    (2000, 0.0),          # the end: min_lr
    (2500, 0.0),          # past the end
])
def test_lr_schedule_values(step, expected):
    assert lr_at(step, 100, 2e-4, epochs=20, warmup_epochs=1, min_lr=0.0) == pytest.approx(expected, abs=1e-12)


def test_lr_schedule_cosine_with_min_lr():
    # e = 5.75 with warmup 1, epochs 20: cos(pi * 4.75/19) = cos(pi/4)
    lr = lr_at(575, 100, 1.0, epochs=20, warmup_epochs=1, min_lr=0.1)
    assert lr == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.sqrt(0.5)))


@pytest.mark.parametrize("e,expected", [(0.0, 0.0), (0.5, 0.01875), (10.0, 0.375), (19.5, 0.73125), (20.0, 0.75)])
def test_universal_probability_at_fractional_epochs(e, expected):
    assert universal_prob(e, 0.0, 0.75, 20) == pytest.approx(expected)


def test_universal_probability_with_nonzero_start():
    assert universal_prob(6.0, 0.2, 0.5, 12) == pytest.approx(0.35)


def test_replace_with_universal_rate_and_shared_mask():
    ids = torch.arange(20000) % 5
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(replace_with_universal([ids], 0.0, g())[0], ids)
    assert (replace_with_universal([ids], 1.0, g())[0] == -1).all()
    out = replace_with_universal([ids], 0.3, g())[0]
    hit = out == -1
    assert abs(hit.float().mean().item() - 0.3) < 0.015
    assert torch.equal(out[~hit], ids[~hit])
    assert torch.equal(replace_with_universal([ids], 0.3, g())[0], out)  # a function of the generator's seed
    a, p, n = replace_with_universal([ids, ids + 1, ids + 2], 0.5, g())  # stage-2 triplets share one mask
    assert torch.equal(a == -1, p == -1) and torch.equal(a == -1, n == -1)


# -- optimiser -----------------------------------------------------------------------------------------------------
def test_param_groups_follow_the_original():
    model = TouchMAE(TINY)
    model.encoder.patch_embed.weight.requires_grad_(False)  # frozen parameters stay out of the optimizer
    no_decay, decay = (set(g["names"]) for g in param_groups_weight_decay(model, 0.1))
    assert {"encoder.cls_token", "encoder.norm_pre.weight", "encoder.norm_pre.bias", "decoder_embed.bias",
            "encoder.blocks.0.self_attn.q_proj.bias", "decoder_norm.weight", "head_video.bias"} <= no_decay
    assert {"encoder.sensor_tokens", "mask_token", "encoder.pos_embed", "encoder.proj.weight",
            "encoder.blocks.0.mlp.fc1.weight", "decoder_embed.weight", "head_image.weight"} <= decay
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not no_decay & decay and no_decay | decay == trainable
    assert "encoder.patch_embed.weight" not in trainable and "decoder_pos_embed" not in trainable  # frozen, buffer
    opt = build_adamw(model, 2e-4, 0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.1]
    assert opt.param_groups[1]["betas"] == (0.9, 0.99)


def test_lr_from_blr():
    assert resolve_lr(None, 1e-3, 512) == pytest.approx(2e-3)
    assert resolve_lr(2e-4, 1e-3, 512) == 2e-4


def test_precision_choice():
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert resolve_precision("auto", torch.device("cuda", 0)) == torch.bfloat16
    assert resolve_precision("fp16", torch.device("cuda", 0)) == torch.float16
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("bf16", torch.device("cpu"))
    with pytest.raises(ValueError, match="fp8"):
        resolve_precision("fp8", torch.device("cpu"))


def _toy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 3))


def test_gradient_accumulation_equals_large_batch_step():
    x, y = torch.randn(2, 8, 6), torch.randn(2, 8, 3)  # two optimizer steps of 8 samples
    big, small = _toy(), _toy()
    steppers = [Stepper(m, build_adamw(m, 1e-2, 0.1), torch.device("cpu")) for m in (big, small)]
    for s in range(2):
        steppers[0].backward(nn.functional.mse_loss(big(x[s]), y[s]))
        steppers[0].step(1e-2)
        for micro in (slice(0, 4), slice(4, 8)):  # 2 micro-batches of 4, each loss / window size
            with steppers[1].accumulate(sync=micro.start == 4):
                steppers[1].backward(nn.functional.mse_loss(small(x[s, micro]), y[s, micro]) / 2)
        steppers[1].step(1e-2)
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_idle_parameters_get_no_update():
    # the MAE head unused in a step keeps grad None, so AdamW applies neither momentum nor weight decay to it
    model = _toy()
    stepper = Stepper(model, build_adamw(model, 1e-2, 0.5), torch.device("cpu"))
    head = model[2].weight.detach().clone()
    for _ in range(2):
        stepper.backward(model[0](torch.randn(4, 6)).pow(2).mean())  # never reaches model[2]
        stepper.step(1e-2)
    assert torch.equal(model[2].weight, head)


# -- interleaving and sampling -------------------------------------------------------------------------------------
def test_interleave_order_consumes_each_loader_once():
    order = interleave_order([5, 3, 0, 7], seed=1, epoch=4)
    assert [order.count(i) for i in range(4)] == [5, 3, 0, 7]
    assert order == interleave_order([5, 3, 0, 7], seed=1, epoch=4)  # a function of (seed, epoch) alone
    assert order != interleave_order([5, 3, 0, 7], seed=1, epoch=5)
    assert order != sorted(order)


def _stream(rank=0, world=1, seed=0):
    env = DistEnv(rank=rank, world_size=world)
    loaders = {"a": build_loader(AugSet(20, 0), 3, 11, env), "b": build_loader(AugSet(9, 1), 2, 12, env)}
    return Interleaved(loaders, seed)


def test_interleaved_epoch_and_mid_epoch_restart_match():
    stream = _stream()
    assert stream.num_batches == [6, 4] and stream.steps_per_epoch == 10
    full = list(stream.epoch(3))
    assert [name for _, name, _ in full] == stream.order(3)
    seen = {n: torch.cat([b["idx"] for _, m, b in full if m == n]).tolist() for n in "ab"}
    assert len(set(seen["a"])) == 18 and len(set(seen["b"])) == 8  # no sample twice; drop_last tails left out
    for start in (4, 7):
        tail = list(_stream().epoch(3, start))  # a fresh process resuming at step `start`
        assert [(i, n) for i, n, _ in tail] == [(i, n) for i, n, _ in full[start:]]
        for (_, _, b1), (_, _, b2) in zip(tail, full[start:]):
            assert torch.equal(b1["idx"], b2["idx"]) and torch.equal(b1["x"], b2["x"])  # same augmentation too


def test_shards_are_disjoint_and_batch_types_agree_across_ranks():
    s0, s1 = _stream(0, 2), _stream(1, 2)
    assert s0.order(2) == s1.order(2)  # every rank runs the same batch type at each step (fixes
    # docs/original/defects.md#24-per-rank-batch-schedule)
    for name in "ab":
        i0 = [i for _, i in s0.loaders[name].sampler]
        i1 = [i for _, i in s1.loaders[name].sampler]
        assert not set(i0) & set(i1) and len(i0) == len(i1)


def test_shard_sampler_reshuffles_per_epoch_and_skips():
    s = ShardSampler(10, seed=5)
    e0 = [i for _, i in s]
    s.set_epoch(1)
    e1 = list(s)
    assert sorted(e0) == list(range(10)) and e0 != [i for _, i in e1] and e1[0][0] == 1
    s.set_epoch(1, skip=4)
    assert list(s) == e1[4:] and len(s) == 6


def test_epoch_seeded_augmentation_is_a_function_of_epoch_and_index():
    ds = EpochSeeded(AugSet(5), seed=9)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = ds[(2, 3)]["x"]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left as it was
    assert torch.equal(ds[(2, 3)]["x"], a)
    assert not torch.equal(ds[(3, 3)]["x"], a)  # a new epoch draws new augmentation


# -- RNG state and checkpoints -------------------------------------------------------------------------------------
def test_rng_state_roundtrip_through_weights_only_load(tmp_path):
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_find_resume(tmp_path):
    assert find_resume(None, tmp_path) is None
    assert find_resume("auto", tmp_path) is None  # nothing yet: a fresh start
    for e in (2, 10, 9):
        (tmp_path / f"checkpoint-{e}.pth").touch()
    assert find_resume("auto", tmp_path) == tmp_path / "checkpoint-10.pth"
    (tmp_path / LAST).touch()
    assert find_resume("auto", tmp_path) == tmp_path / LAST
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        find_resume(str(tmp_path / "nope.pth"), tmp_path)


def test_training_checkpoint_is_weights_only_and_checked(tmp_path):
    model = TouchMAE(TINY)
    opt = build_adamw(model, 1e-3, 0.1)
    model(torch.randn(2, 3, 56, 56), [0, 1])["loss"].backward()
    opt.step()
    path = save_training_checkpoint(tmp_path, DistEnv(), model, {"run": {"seed": 0}}, opt, scaler={}, epoch=3,
                                    step=40, data_state={"epoch": 4, "step_in_epoch": 0}, keep_epoch=True)
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["format"], ckpt["kind"], ckpt["epoch"], ckpt["step"]) == ("anytouch", "stage1", 3, 40)
    assert ckpt["data_state"] == {"epoch": 4, "step_in_epoch": 0} and len(ckpt["rng"]) == 1
    assert torch.equal(ckpt["model"]["mask_token"], model.mask_token.detach())
    assert torch.load(tmp_path / "checkpoint-3.pth", weights_only=True)["step"] == 40
    assert load_training_checkpoint(path, "stage1", TINY.to_dict())["step"] == 40
    with pytest.raises(ValueError, match="another architecture"):
        load_training_checkpoint(path, "stage1", get_arch("small").to_dict())
    with pytest.raises(ValueError, match="'stage1' checkpoint"):
        load_training_checkpoint(path, "stage2", TINY.to_dict())


# -- FLOPs ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("video", [False, True])
def test_flop_count_matches_torch_flop_counter(video):
    model = TouchMAE(TINY)
    touch = torch.randn(2, 4, 3, 56, 56) if video else torch.randn(2, 3, 56, 56)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math SDPA: countable bmm
        model(touch, [0, 1], mask_ratio=0.75)
    assert counter.get_total_flops() == 2 * mae_forward_flops(TINY, 0.75, video)["total"]


def test_epoch_reaches_datasets_with_set_epoch_in_persistent_workers():
    """The cross-sensor sampler varies its draws by epoch; the epoch must reach DataLoader workers that persist."""
    from torch.utils.data import DataLoader, Dataset

    from anytouch.engine.data import EpochSeeded

    class EpochEcho(Dataset):
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.epoch

    ds = EpochSeeded(EpochEcho(), seed=0)
    loader = DataLoader(ds, batch_size=4, sampler=[[0, 0], [0, 1], [0, 2], [0, 3]], num_workers=1,
                        persistent_workers=True)
    assert next(iter(loader)).tolist() == [0, 0, 0, 0]
    loader.sampler[:] = [[3, i] for i in range(4)]
    assert next(iter(loader)).tolist() == [3, 3, 3, 3]
