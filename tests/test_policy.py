"""anytouch.policy.TactileEncoder, the LeRobot adapter (anytouch.integrations.lerobot) and the policy example."""
import abc
import enum
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from anytouch2_fixtures import tiny_encoder

import anytouch
from anytouch.integrations import lerobot as adapter
from anytouch.models import TouchEncoder
from anytouch.policy import TactileEncoder

TINY = anytouch.get_arch("tiny")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "policy_lerobot.py"


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return TouchEncoder(TINY).eval()


def _frames(b=2, t=5, h=30, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, 3), generator=g, dtype=torch.uint8)


def test_raw_histories_give_the_encoders_feature_of_the_newest_window(encoder):
    frames = _frames()
    touch = TactileEncoder(encoder, sensor="digit")
    ref = encoder(anytouch.preprocess_touch_batch(frames[:, -3:], size=56), "digit")
    assert torch.equal(touch(frames), ref)
    assert torch.equal(touch(frames.permute(0, 1, 4, 2, 3)), ref)  # channels first
    assert not torch.equal(touch(frames, sensor="universal"), ref)
    with pytest.raises(ValueError, match=r"history of 2 frame\(s\) is too short: .* needs at least 3"):
        touch(frames[:, -2:])  # fewer frames than the window
    img = frames[:, -1]
    assert torch.equal(touch(img), encoder(anytouch.preprocess_touch_batch(img, size=56), "digit"))
    with pytest.raises(ValueError, match=r"frames must be .*got shape \(30, 40, 3\)"):
        touch(frames[0, 0])


def test_tuning_modes_train_only_what_they_say(encoder):
    base = {k: v.clone() for k, v in encoder.state_dict().items()}
    frozen = TactileEncoder(encoder)
    assert list(frozen.trainable_parameters()) == []
    assert not frozen(_frames()).requires_grad
    frozen.train()
    assert not frozen.encoder.training

    lora = TactileEncoder(TouchEncoder(TINY).eval(), tune="lora", lora_rank=2)
    names = {n for n, p in lora.encoder.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names) and len(names) == 2 * 4 * TINY.touch.layers

    last = TactileEncoder(TouchEncoder(TINY).eval(), tune="last", blocks=1)
    names = {n for n, p in last.encoder.named_parameters() if p.requires_grad}
    assert names and all(n.startswith((f"blocks.{TINY.touch.layers - 1}.", "norm_post.", "proj.")) for n in names)
    with pytest.raises(ValueError, match="blocks=9; the touch encoder has 2 blocks"):
        TactileEncoder(TouchEncoder(TINY), tune="last", blocks=9)
    with pytest.raises(ValueError, match="tune='lorra'; expected one of frozen, lora, last"):
        TactileEncoder(encoder, tune="lorra")
    assert all(torch.equal(v, base[k]) for k, v in encoder.state_dict().items())


def test_lora_starts_as_the_identity(encoder):
    frames = _frames()
    before = TactileEncoder(encoder)(frames)
    lora = TactileEncoder(encoder, tune="lora")
    assert torch.allclose(lora(frames), before, atol=1e-6)  # B = 0: nothing changes until it trains


def _example():
    spec = importlib.util.spec_from_file_location("policy_lerobot_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tune", ["frozen", "lora"])
def test_example_policy_learns_and_leaves_the_base_encoder_alone(tmp_path, tune):
    ex = _example()
    data = ex.load_dataset(ex.record_synthetic(tmp_path / "d.npz", n=32), torch.device("cpu"))
    torch.manual_seed(0)
    reference = TouchEncoder(TINY).state_dict()  # the stand-in encoder the example builds (seed 0)
    policy, losses = ex.train(data, steps=30, tune=tune, batch_size=32)  # full batches: the loss curve is smooth
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    state = policy.touch.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in reference.items())  # base weights unchanged
    lora = {k: v for k, v in state.items() if "lora_B" in k}
    assert (tune == "lora") == bool(lora) and all(v.abs().sum() > 0 for v in lora.values())  # adapters trained


def test_example_runs_as_a_script(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _example().main(["--steps", "3"])
    out = capsys.readouterr().out
    assert "frozen encoder, 3 steps: loss" in out and "features (2, 32)" in out
    assert (tmp_path / "tactile_dataset.npz").is_file()


def test_observation_step_without_lerobot(encoder):
    step = adapter.TactileFeatureStep(encoder=TactileEncoder(encoder, sensor="digit"), input_key="obs.tactile")
    frames = _frames()
    state = torch.randn(2, 4)
    out = step.observation({"obs.tactile": frames, "observation.environment_state": state, "other": 1})
    feats = TactileEncoder(encoder, sensor="digit")(frames)
    assert set(out) == {"observation.environment_state", "other"}
    assert torch.equal(out["observation.environment_state"], torch.cat([state, feats], -1))
    assert step.output_shape((4,)) == (36,) and step.output_shape() == (32,)
    with pytest.raises(KeyError, match="observation has no 'obs.tactile'.*set input_key="):
        step.observation({"other": 1})
    with pytest.raises(ValueError, match="cannot be saved: build it with checkpoint="):
        step.get_config()
    with pytest.raises(ValueError, match="exactly one of checkpoint="):
        adapter.TactileFeatureStep()


def test_observation_step_from_a_checkpoint_records_it(encoder, tmp_path):
    folder = anytouch.save_pretrained(encoder, tmp_path / "hub")
    step = adapter.TactileFeatureStep(folder, sensor=1, device="cpu")
    again = adapter.TactileFeatureStep(**step.get_config())  # what LeRobot does when it loads a saved pipeline
    frames = _frames()
    assert torch.equal(again.observation({"observation.images.tactile": frames})["observation.environment_state"],
                       TactileEncoder(encoder, sensor=1)(frames))


def _fake_lerobot(monkeypatch):
    """A stand-in with the names and signatures of lerobot 0.6's processor API (lerobot needs Python >= 3.12 and
    torch < 2.12, so it cannot be installed next to this project's torch)."""
    class FeatureType(str, enum.Enum):
        STATE, VISUAL, ENV = "STATE", "VISUAL", "ENV"

    class PipelineFeatureType(str, enum.Enum):
        ACTION, OBSERVATION = "ACTION", "OBSERVATION"

    @dataclass
    class PolicyFeature:
        type: FeatureType
        shape: tuple

    class ProcessorStepRegistry:
        _registry = {}

        @classmethod
        def register(cls, name=None):
            def deco(step):
                cls._registry[name or step.__name__] = step
                return step
            return deco

    class ObservationProcessorStep(abc.ABC):
        @abc.abstractmethod
        def observation(self, observation): ...

        @abc.abstractmethod
        def transform_features(self, features): ...

        def __call__(self, transition):
            return {**transition, "observation": self.observation(dict(transition["observation"]))}

    root, configs, types_mod, processor = (types.ModuleType(n) for n in
                                           ("lerobot", "lerobot.configs", "lerobot.configs.types", "lerobot.processor"))
    types_mod.FeatureType, types_mod.PipelineFeatureType, types_mod.PolicyFeature = (
        FeatureType, PipelineFeatureType, PolicyFeature)
    processor.ObservationProcessorStep, processor.ProcessorStepRegistry = ObservationProcessorStep, ProcessorStepRegistry
    for name, mod in (("lerobot", root), ("lerobot.configs", configs), ("lerobot.configs.types", types_mod),
                      ("lerobot.processor", processor)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(adapter, "_CLASS", None)
    return types_mod, ProcessorStepRegistry


def test_lerobot_step_against_the_processor_api(encoder, monkeypatch):
    types_mod, registry = _fake_lerobot(monkeypatch)
    step = adapter.make_lerobot_step(encoder=TactileEncoder(encoder), input_key="observation.images.tactile")
    assert registry._registry[adapter.REGISTRY_NAME] is type(step)
    obs_t, env = types_mod.PipelineFeatureType.OBSERVATION, types_mod.FeatureType.ENV
    features = {obs_t: {"observation.images.tactile": types_mod.PolicyFeature(types_mod.FeatureType.VISUAL, (3, 30, 40)),
                        "observation.state": types_mod.PolicyFeature(types_mod.FeatureType.STATE, (4,))}}
    out = step.transform_features(features)[obs_t]
    assert set(out) == {"observation.state", "observation.environment_state"}
    assert out["observation.environment_state"] == types_mod.PolicyFeature(env, (32,))
    transition = step({"observation": {"observation.images.tactile": _frames(), "observation.state": torch.zeros(2, 4)}})
    assert transition["observation"]["observation.environment_state"].shape == (2, 32)


def test_lerobot_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lerobot", None)
    monkeypatch.setattr(adapter, "_CLASS", None)
    with pytest.raises(ImportError, match=r"pip install 'anytouch\[lerobot\]'"):
        adapter.lerobot_step_class()


def test_with_the_real_lerobot(encoder):
    pytest.importorskip("lerobot")
    from lerobot.processor import DataProcessorPipeline, ObservationProcessorStep

    step = adapter.make_lerobot_step(encoder=TactileEncoder(encoder))
    assert isinstance(step, ObservationProcessorStep)
    pipeline = DataProcessorPipeline([step], to_transition=lambda b: {"observation": b}, to_output=lambda t: t)
    out = pipeline({"observation.images.tactile": _frames()})
    assert out["observation"]["observation.environment_state"].shape == (2, 32)


# -- AnyTouch 2: the encoder's own window, statistics, background and sensor table --------------------------------
@pytest.mark.parametrize("frames_n", [4, 2])
def test_anytouch2_feature_is_the_encoder_on_its_own_window_and_background(frames_n):
    enc = tiny_encoder(frames_n)
    stride, span = enc.frame_stride, (frames_n - 1) * enc.frame_stride + 1
    hist = _frames(b=2, t=span + 3, h=24, w=20, seed=1)
    bg = _frames(b=2, t=1, h=24, w=20, seed=2)[:, 0]  # one no-contact frame per sample
    window = hist[:, -span::stride]
    assert window.shape[1] == frames_n
    ref = enc(enc.preprocess(window, background=bg), "dm")
    touch = TactileEncoder(enc, sensor="dm", background=bg)
    assert touch.span == span
    assert torch.equal(touch(hist), ref)
    assert torch.equal(TactileEncoder(enc, sensor="dm")(hist, background=bg), ref)  # per call
    assert not torch.equal(TactileEncoder(enc, sensor="dm")(hist), ref)  # no background: another input
    assert not torch.equal(touch(hist[:, :-1]), ref)  # the newest frame counts
    with pytest.raises(ValueError, match=f"history of {span - 1} frame.*needs at least {span} .*{frames_n} frames, "
                                         f"{stride} apart"):
        touch(hist[:, :span - 1])
    last = TactileEncoder(enc, sensor=5, background=bg, pooling="last")
    assert last.dim == enc.width and torch.equal(last(hist), enc(enc.preprocess(window, background=bg), 5, "last"))


def test_sensor_names_and_poolings_follow_the_family(encoder):
    with pytest.raises(ValueError, match="sensor 'dm' is not a sensor of the anytouch family"):
        TactileEncoder(encoder, sensor="dm")
    with pytest.raises(ValueError, match="sensor 'dm' is not a sensor of the anytouch family"):
        TactileEncoder(encoder)(_frames(), sensor=["digit", "dm"])
    enc2 = tiny_encoder(4)
    with pytest.raises(ValueError, match="pooling='global' for a anytouch2 encoder; expected one of cls, last"):
        TactileEncoder(enc2, pooling="global")
    with pytest.raises(ValueError, match="pooling='last' for a anytouch encoder"):
        TactileEncoder(encoder, pooling="last")
    # universal = the last slot of each family's table
    hist = _frames(b=1, t=7, h=16, w=16)
    assert torch.equal(TactileEncoder(enc2, sensor="universal")(hist), TactileEncoder(enc2, sensor=19)(hist))


def test_anytouch2_lora_and_last_blocks_tune():
    enc = tiny_encoder(4)
    hist = _frames(b=2, t=7, h=16, w=16)
    before = TactileEncoder(enc)(hist)
    lora = TactileEncoder(tiny_encoder(4), tune="lora", lora_rank=2)
    names = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert len(names) == 2 * 4 * enc.config.touch.layers and all("lora_" in n for n in names)
    assert torch.allclose(lora(hist), before, atol=1e-6)
    lora(hist).pow(2).sum().backward()  # B = 0 at the start: the gradient reaches every B
    assert all(p.grad.abs().sum() > 0 for n, p in lora.named_parameters() if "lora_B" in n)
    last = TactileEncoder(tiny_encoder(4), tune="last", blocks=1)
    names = {n for n, p in last.encoder.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("blocks.1.", "norm_post.", "proj.")) for n in names)
    last(hist).sum().backward()
    assert all(p.grad is not None for p in last.trainable_parameters())


def test_observation_step_with_anytouch2_and_a_background_key():
    enc = tiny_encoder(2)
    hist, bg = _frames(b=2, t=8, h=20, w=20), _frames(b=2, t=1, h=20, w=20, seed=3)[:, 0]
    step = adapter.TactileFeatureStep(encoder=TactileEncoder(enc, sensor="dm"), input_key="obs.tactile",
                                      background_key="obs.tactile_bg")
    out = step.observation({"obs.tactile": hist, "obs.tactile_bg": bg})
    assert set(out) == {"observation.environment_state"}
    assert torch.equal(out["observation.environment_state"], enc(enc.preprocess(hist[:, -7::6], background=bg), "dm"))
    with pytest.raises(KeyError, match="no 'obs.tactile_bg'.*set background_key="):
        step.observation({"obs.tactile": hist})
