"""Stage-1 training (anytouch/train/stage1.py): the recipe config, model initialisation, kill-and-resume continuity,
the non-finite-loss stop, and a 2-process torchrun job through train_stage1.sh on synthetic data whose checkpoint
loads with anytouch.load_encoder / load_model and exports to the original stage-1 layout."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import anytouch
import anytouch.train.stage1 as stage1
from anytouch.checkpoint import ours
from anytouch.checkpoint.original import to_original_stage1
from anytouch.config import ConfigError, load_config
from anytouch.data.device_aug import draw_touch_params
from anytouch.engine.checkpointing import LAST
from anytouch.models import TouchEncoder, TouchMAE, get_arch
from anytouch.train.config import ModelConfig, Stage1Config

REPO = Path(__file__).resolve().parents[1]
TINY = get_arch("tiny")


class FakePretrain(Dataset):
    """Fixed per-index uint8 frames plus augmentation parameters drawn from torch's global RNG (as the loaders)."""

    def __init__(self, kind, n):
        self.shape = (3, 56, 56) if kind == "image" else (4, 3, 56, 56)
        self.kind, self.n = kind, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(2 * i + (self.kind == "video"))
        frames = torch.randint(0, 256, self.shape, generator=g, dtype=torch.uint8)
        return {"touch": frames, "touch_aug": draw_touch_params(), "sensor": i % 5, "source": "fake"}


@pytest.fixture
def fake_data(monkeypatch):
    sizes = {"image": 12, "video": 8}  # batch 4: 3 image + 2 video batches = 5 steps per epoch
    monkeypatch.setattr(stage1, "build_pretrain_set", lambda cfg, stage, kind, size, vsize: FakePretrain(kind, sizes[kind]))


def run(out, *overrides):
    stage1.main(["--config", str(REPO / "configs" / "stage1.yaml"), "model=tiny", f"run.output_dir={out}",
                 "data.num_workers=0", "train.batch_size={image: 4, video: 4}", "train.epochs=2", "train.log_every=1",
                 "train.accum_iter=2", "train.ckpt_every_steps=2", *overrides])


def losses(out):
    """step -> loss from log.jsonl; a step logged twice (before a kill and after the resume) keeps the last."""
    recs = [json.loads(line) for line in open(Path(out) / "log.jsonl")]
    return {r["step"]: r["train_loss_full"] for r in recs}


class Killed(BaseException):
    pass


def fail_at(monkeypatch, call, how):
    orig, calls = TouchMAE.forward, [0]

    def forward(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == call and how == "kill":
            raise Killed
        out = orig(self, *args, **kwargs)
        if calls[0] == call and how == "nan":
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(TouchMAE, "forward", forward)


# -- config --------------------------------------------------------------------------------------------------------
def test_stage1_yaml_is_the_paper_recipe():
    cfg = load_config(Stage1Config, [REPO / "configs" / "stage1.yaml"])
    t, o = cfg.train, cfg.optim
    assert (t.epochs, o.lr, o.weight_decay, o.warmup_epochs, o.min_lr, tuple(o.betas)) == (20, 2e-4, 0.1, 1, 0, (0.9, 0.99))
    assert t.batch_size == {"image": 64, "video": 64} and t.accum_iter == 1 and o.clip_grad is None
    assert (t.mask_ratio, t.beta_start, t.beta_end) == (0.75, 0.0, 0.75)
    assert (cfg.model.arch, cfg.model.init, cfg.model.inflate) == ("anytouch-l14", "clip", "repeat")
    assert all(v == 1 for v in cfg.data.repeats.values()) and len(cfg.data.repeats) == 9
    assert cfg.run.output_dir == "log/output_stage1" and cfg.run.seed == 0


@pytest.mark.parametrize("model", ["tiny", "small", "l14"])
def test_group_files_merge(model):
    cfg = load_config(Stage1Config, [REPO / "configs" / "stage1.yaml"], [f"model={model}", "data=synthetic"])
    assert cfg.data.source == "synthetic" and cfg.train.epochs == 20
    assert get_arch(cfg.model.arch).name == {"l14": "anytouch-l14"}.get(model, model)
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(Stage1Config, [], ["train.batchsize=3"])


# -- initialisation ------------------------------------------------------------------------------------------------
def test_init_from_our_and_original_checkpoints(tmp_path):
    torch.manual_seed(3)
    src = TouchMAE(TINY)
    ours.save_checkpoint(tmp_path / "ours.pth", src)
    torch.save({"model": to_original_stage1(src.state_dict()), "epoch": 19}, tmp_path / "original.pth")
    for name in ("ours.pth", "original.pth"):
        model = stage1.build_model(ModelConfig(arch="tiny", init="checkpoint", checkpoint=str(tmp_path / name)), log=str)
        for k, v in src.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), (name, k)
    with pytest.raises(ValueError, match="model.arch"):
        stage1.build_model(ModelConfig(arch="small", init="checkpoint", checkpoint=str(tmp_path / "ours.pth")), log=str)


def test_init_from_hf_clip(tmp_path):
    transformers = pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent))
    from checkpoint_fixtures import clip_config_dict

    cfg = {k: v for k, v in clip_config_dict().items() if k not in ("architectures", "model_type")}
    clip = transformers.CLIPModel(transformers.CLIPConfig(**cfg))
    torch.save(clip.state_dict(), tmp_path / "pytorch_model.bin")
    model = stage1.build_model(ModelConfig(arch="tiny", init="clip", clip_weights=str(tmp_path)), log=str)
    conv = clip.vision_model.embeddings.patch_embedding.weight  # (D, 3, p, p) -> repeated over 3 frames, no /3
    assert torch.equal(model.encoder.patch_embed.weight, conv.unsqueeze(1).repeat(1, 3, 1, 1, 1))
    assert torch.equal(model.encoder.proj.weight, clip.visual_projection.weight)


# -- the loop ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kill_at", [4, 9])  # global steps 3 (epoch 0) and 8 (epoch 1), both after a step checkpoint
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, fake_data, monkeypatch, kill_at):
    run(tmp_path / "full", "train.beta_end=0.75")
    with monkeypatch.context() as m:
        fail_at(m, kill_at, "kill")
        with pytest.raises(Killed):
            run(tmp_path / "killed", "train.beta_end=0.75")
    assert max(losses(tmp_path / "killed")) == kill_at - 1  # steps after the last checkpoint are redone on resume
    run(tmp_path / "killed", "train.beta_end=0.75", "run.resume=auto")
    full, resumed = losses(tmp_path / "full"), losses(tmp_path / "killed")
    assert sorted(full) == sorted(resumed) == list(range(1, 11))
    for step in full:
        assert resumed[step] == pytest.approx(full[step], rel=1e-6, abs=1e-7), step
    a = torch.load(tmp_path / "full" / LAST, weights_only=True)
    b = torch.load(tmp_path / "killed" / LAST, weights_only=True)
    assert a["step"] == b["step"] == 10 and a["data_state"] == b["data_state"]
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6, msg=lambda msg: f"{k}: {msg}")


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, fake_data, monkeypatch):
    fail_at(monkeypatch, 4, "nan")
    with pytest.raises(stage1.NonFiniteLossError, match=r"global step 3\), video batch: loss=nan") as err:
        run(tmp_path, "train.accum_iter=1", "train.ckpt_every_steps=2")
    assert "loss_recon=" in str(err.value) and "loss_pred=" in str(err.value)
    assert f"last good checkpoint is {tmp_path / LAST}" in str(err.value)
    ckpt = torch.load(tmp_path / LAST, weights_only=True)
    assert ckpt["step"] == 2 and ckpt["data_state"]["step_in_epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert not (tmp_path / "checkpoint-0.pth").exists()


def test_nan_gradient_with_finite_loss_stops_before_the_weights_change(tmp_path, fake_data, monkeypatch):
    orig, calls = TouchMAE.forward, [0]

    def forward(self, *args, **kwargs):  # global step 1: a finite loss whose gradient is NaN on one tensor only
        calls[0] += 1
        out = orig(self, *args, **kwargs)
        if calls[0] == 2:
            out["loss"] = out["loss"] + 0 * torch.sqrt(0 * self.encoder.cls_token.sum())  # d sqrt(0) = inf
        return out

    monkeypatch.setattr(TouchMAE, "forward", forward)
    run(tmp_path / "ok", "train.accum_iter=1", "train.ckpt_every_steps=1", "train.max_steps=1")
    with pytest.raises(stage1.NonFiniteLossError, match=r"non-finite gradient norm \(nan\).*global step 1\)") as err:
        run(tmp_path / "ok", "train.accum_iter=1", "train.ckpt_every_steps=1", "run.resume=auto")
    assert f"last good checkpoint is {tmp_path / 'ok' / LAST}" in str(err.value)
    ckpt = torch.load(tmp_path / "ok" / LAST, weights_only=True)
    assert ckpt["step"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_log_records_the_schedules_used_and_flushes_each_epoch(tmp_path, fake_data):
    from anytouch.engine.schedule import lr_at, universal_prob

    run(tmp_path, "train.log_every=3", "train.beta_end=0.75", "optim.warmup_epochs=1")
    recs = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    spe, epochs = 5, 2
    assert [r["step"] for r in recs] == [3, 5, 6, 9, 10]  # every 3rd step, and each epoch's last step
    cfg = load_config(Stage1Config, [tmp_path / "config.yaml"])
    base = cfg.optim.lr if cfg.optim.lr is not None else cfg.optim.blr * 4 * 2 / 256
    for r in recs:
        step = r["step"] - 1  # the record's own (last) step
        win_start = step - (step % spe) % 2  # accum_iter 2: the lr of the window the step belongs to
        assert r["lr"] == pytest.approx(lr_at(win_start, spe, base, epochs, 1, cfg.optim.min_lr)), r
        assert r["sensor_p"] == pytest.approx(universal_prob(step / spe, 0.0, 0.75, epochs)), r
        assert r["epoch_float"] == pytest.approx(step / spe)  # plotted at int(step/spe*1000), as the original


def test_stale_checkpoint_temp_files_are_removed(tmp_path, fake_data, capsys):
    tmp_path.mkdir(exist_ok=True)
    stale = tmp_path / ".checkpoint-last.pth.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / "notes.tmp"
    keep.write_text("not ours")
    run(tmp_path, "train.max_steps=1")
    assert not stale.exists() and keep.exists()
    assert "removed .checkpoint-last.pth.abc123.tmp" in capsys.readouterr().out


def test_max_steps_stops_at_a_window_end_and_saves(tmp_path, fake_data):
    run(tmp_path, "train.max_steps=3")  # accum_iter 2: the window [2, 3] ends at step 4
    ckpt = torch.load(tmp_path / LAST, weights_only=True)
    assert ckpt["step"] == 4 and ckpt["data_state"] == {"epoch": 0, "step_in_epoch": 4, "steps_per_epoch": 5}
    assert sorted(losses(tmp_path)) == [1, 2, 3, 4]


def test_train_stage1_sh_two_processes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "NGPU": "2", "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    cmd = ["bash", str(REPO / "train_stage1.sh"), "model=tiny", "data=synthetic", f"run.output_dir={out}",
           "data.num_workers=1", "data.synthetic.num_samples=2", "data.synthetic.render_size=32",
           "train.batch_size={image: 4, video: 4}", "train.epochs=2", "train.accum_iter=2", "train.log_every=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    recs = [json.loads(line) for line in open(out / "log.jsonl")]
    assert [r["step"] for r in recs] == [2, 4, 6, 8]  # 18 images, 16 clips over 2 ranks: 2 + 2 batches of 4 each
    assert {"train_loss_image", "train_loss_video", "train_loss_full", "lr"} <= set().union(*recs)
    ckpt = torch.load(out / LAST, weights_only=True)
    assert (ckpt["kind"], ckpt["step"], ckpt["epoch"], len(ckpt["rng"])) == ("stage1", 8, 1, 2)
    assert ckpt["config"]["train"]["accum_iter"] == 2 and (out / "checkpoint-0.pth").exists()
    assert load_config(Stage1Config, [out / "config.yaml"]).run.output_dir == str(out)
    enc = anytouch.load_encoder(out / "checkpoint-1.pth")
    assert isinstance(enc, TouchEncoder)
    assert torch.equal(enc.sensor_tokens, ckpt["model"]["encoder.sensor_tokens"])
    assert anytouch.load_model(out / LAST).encode_touch(torch.zeros(1, 3, 56, 56), -1).shape == (1, TINY.projection_dim)
    assert "video_patch_embedding.weight" in to_original_stage1(ckpt["model"])

    # the chain: train_stage2.sh from this stage-1 checkpoint (one CPU process), loadable with all three encoders
    out2 = tmp_path / "run2"
    cmd = ["bash", str(REPO / "train_stage2.sh"), "model=tiny", "data=synthetic", f"run.output_dir={out2}",
           f"model.stage1_checkpoint={out / LAST}", "data.num_workers=0", "data.synthetic.num_samples=2",
           "data.synthetic.cross_samples=4", "data.synthetic.render_size=32", "train.epochs=1",
           "data.repeats={tacquad: 1, tag: 1, of_real: 0, visgel: 0, cloth: 0, octopi: 0, ssvtp: 0, tvl: 0, ycb_slide: 0}",
           "train.batch_size={image: 4, image_cross: 2, video: 4, video_cross: 2}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**env, "NGPU": "1"}, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"touch branch from {out / LAST}" in res.stdout
    model = anytouch.load_model(out2 / LAST)
    with torch.no_grad():
        assert model.encode_text(["a tactile image"]).shape == model.encode_vision(torch.zeros(1, 3, 56, 56)).shape


def test_on_error_skip_reports_unreadable_frames_at_epoch_end(tmp_path, capsys):
    """A corrupt frame in a real-layout tree: data.on_error=skip trains on and reports the file, nothing silent."""
    from anytouch.data.synthetic_tree import write_synthetic_tree

    root = tmp_path / "tactile_datasets"
    write_synthetic_tree(str(root), names=["tacquad"], sequences=2, frames=8, size=32, progress=False)
    frames = sorted((root / "tacquad").rglob("gelsight/*.png"))
    frames[len(frames) // 2].write_bytes(b"not a png")
    only_tacquad = "{" + ", ".join(f"{s}: {int(s == 'tacquad')}" for s in anytouch.data.PRETRAIN_SOURCES) + "}"
    common = ["--config", str(REPO / "configs" / "stage1.yaml"), "model=tiny", "data.num_workers=0",
              f"data.root={root}", f"data.repeats={only_tacquad}", "train.batch_size={image: 4, video: 4}",
              "train.epochs=1", "optim.warmup_epochs=0"]
    with pytest.raises(anytouch.data.DataError, match="not a png|corrupt|readable"):
        stage1.main([*common, f"run.output_dir={tmp_path / 'raise'}"])
    stage1.main([*common, "data.on_error=skip", f"run.output_dir={tmp_path / 'skip'}"])
    assert "skipped" in capsys.readouterr().out
    recs = [json.loads(line) for line in open(tmp_path / "skip" / "skipped.jsonl")]
    assert recs and {r["path"] for r in recs} == {str(frames[len(frames) // 2])}


# -- logged parts: the objective declares them ---------------------------------------------------------------------
def _with_extra_part(monkeypatch):
    orig = TouchMAE.forward

    def forward(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        out["loss_extra"] = out["loss_recon"].detach() * 0 + 7.0
        return out

    monkeypatch.setattr(TouchMAE, "forward", forward)


def test_an_undeclared_part_stops_the_run_naming_it(tmp_path, fake_data, monkeypatch):
    _with_extra_part(monkeypatch)
    with pytest.raises(ValueError, match=r"TouchMAE returned scalar part\(s\) loss_extra for a '(image|video)' batch"):
        run(tmp_path, "train.max_steps=1")


def test_a_declared_part_is_logged(tmp_path, fake_data, monkeypatch):
    _with_extra_part(monkeypatch)
    parts = {k: v + ("loss_extra",) for k, v in TouchMAE.parts.items()}
    monkeypatch.setattr(TouchMAE, "parts", parts)
    run(tmp_path, "train.epochs=1")
    recs = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert {r.get("train_loss_image_extra") for r in recs if "train_loss_image" in r} == {7.0}
    assert {r.get("train_loss_video_extra") for r in recs if "train_loss_video" in r} == {7.0}


# -- the run folder: retention, no silent overwrite, no doubled log records ----------------------------------------
def test_epoch_checkpoint_retention(tmp_path, fake_data):
    run(tmp_path, "train.epochs=7", "train.keep_last=2", "train.keep_every=3", "train.ckpt_every_steps=0")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pth")) == [
        "checkpoint-2.pth", "checkpoint-5.pth", "checkpoint-6.pth", LAST]
    assert torch.load(tmp_path / "checkpoint-5.pth", weights_only=True)["epoch"] == 5
    assert torch.load(tmp_path / LAST, weights_only=True)["epoch"] == 6


def test_retention_keeps_everything_with_the_original_settings(tmp_path, fake_data):
    run(tmp_path, "train.epochs=3", "train.keep_last=3", "train.keep_every=0")
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pth")) == [
        "checkpoint-0.pth", "checkpoint-1.pth", "checkpoint-2.pth", LAST]
    run(tmp_path / "none", "train.epochs=2", "train.keep_last=0", "train.keep_every=0")
    assert [p.name for p in (tmp_path / "none").glob("checkpoint-*.pth")] == [LAST]


def test_a_fresh_start_into_a_finished_run_is_refused(tmp_path, fake_data):
    run(tmp_path, "train.epochs=1")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    log = (tmp_path / "log.jsonl").read_text()
    with pytest.raises(FileExistsError, match=r"holds an earlier run \(checkpoint-last.pth, 1 epoch checkpoint.*"
                                              r"run.resume=auto.*fresh folder"):
        run(tmp_path, "train.epochs=1")
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before  # nothing touched
    assert (tmp_path / "log.jsonl").read_text() == log
    (tmp_path / "quiet").mkdir()
    (tmp_path / "quiet" / "log.jsonl").write_text('{"step": 1}\n')  # a run killed before its first checkpoint
    with pytest.raises(FileExistsError, match=r"\(log.jsonl\)"):
        run(tmp_path / "quiet", "train.epochs=1")


def test_resume_does_not_log_the_rerun_steps_twice(tmp_path, fake_data, monkeypatch, capsys):
    with monkeypatch.context() as m:
        fail_at(m, 4, "kill")  # killed in step 4; the last checkpoint is after step 2
        with pytest.raises(Killed):
            run(tmp_path)
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"step": 4, "train_loss')  # a torn last line
    run(tmp_path, "run.resume=auto")
    steps = [json.loads(line)["step"] for line in open(tmp_path / "log.jsonl")]
    assert steps == list(range(1, 11))
    assert "log.jsonl: dropped 2 record(s) past step 2" in capsys.readouterr().out

    quiet = tmp_path / "quiet"  # resume=auto and no checkpoint: a fresh start that drops the old records
    quiet.mkdir()
    (quiet / "log.jsonl").write_text('{"step": 1}\n')
    run(quiet, "run.resume=auto", "train.max_steps=2")
    assert [json.loads(line)["step"] for line in open(quiet / "log.jsonl")] == [1, 2]


def test_compile_flag_compiles_the_tower_stacks(tmp_path, fake_data, monkeypatch):
    """train.compile=true reaches nn.Module.compile for every transformer stack (encoder and decoder), and nothing
    is compiled without it; the checkpoint keeps the eager parameter names."""
    from anytouch.models.layers import Transformer

    compiled = []
    monkeypatch.setattr(Transformer, "compile", lambda self, *a, **k: compiled.append(self))
    run(tmp_path / "eager", "train.max_steps=1")
    assert compiled == []
    run(tmp_path / "compiled", "train.max_steps=1", "train.compile=true")
    assert len(compiled) == 2  # the touch encoder's blocks and the MAE decoder's
    eager = torch.load(tmp_path / "eager" / LAST, weights_only=True)["model"]
    assert list(torch.load(tmp_path / "compiled" / LAST, weights_only=True)["model"]) == list(eager)


@pytest.mark.slow
def test_compiled_training_matches_eager_on_cpu(tmp_path, fake_data):
    """torch.compile for real on the CPU (inductor): the same losses as the eager run, to compile noise."""
    run(tmp_path / "eager", "train.max_steps=2")
    run(tmp_path / "compiled", "train.max_steps=2", "train.compile=true")
    a, b = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert sorted(a) == sorted(b) == [1, 2]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5)


def test_the_step_augments_on_the_device(tmp_path, fake_data, monkeypatch):
    """The training step hands the collated uint8 frames and their per-sample parameters to apply_touch_aug on the
    training device, and the encoder sees exactly its result."""
    import anytouch.data.device_aug as device_aug

    calls, seen, orig_aug, orig_fwd = [], [], device_aug.apply_touch_aug, TouchMAE.forward

    def spy(frames, params, *args, **kwargs):
        out = orig_aug(frames, params, *args, **kwargs)
        calls.append((frames.dtype, frames.device, params.clone(), out))
        return out

    def forward(self, touch, *args, **kwargs):
        seen.append(touch)
        return orig_fwd(self, touch, *args, **kwargs)

    monkeypatch.setattr(device_aug, "apply_touch_aug", spy)
    monkeypatch.setattr(TouchMAE, "forward", forward)
    run(tmp_path, "train.max_steps=2")
    assert len(calls) == len(seen) == 2
    for (dtype, device, params, out), touch in zip(calls, seen):
        assert dtype == torch.uint8 and device == torch.device("cpu") and touch is out
        assert params.shape == (4, 10) and not torch.equal(params[0], params[1])  # per sample, drawn by the loader
