"""New-sensor adaptation: only the chosen sensor slot moves, the MAE loss on the new sensor's frames goes down,
and the model is left as it was found (trainability flags, mode)."""
import pytest
import torch

from anytouch.adapt import adapt_sensor_slot, free_slots
from anytouch.models import AnyTouchModel, TouchMAE, get_arch
from anytouch.viz import synthetic_sensor_set


@pytest.fixture(scope="module")
def frames():
    # a sensor look the tiny model has never been trained on: synthetic GelSlim frames
    touch, _, _ = synthetic_sensor_set(num_materials=4, per_sensor=6, sensors=(2,), image_size=56, seed=0)
    return touch


def test_free_slots():
    assert free_slots(10) == [5, 6, 7, 8]  # 0-4 named sensors, 9 universal
    assert free_slots(6) == []


def test_only_the_slot_trains_and_loss_drops(frames):
    torch.manual_seed(0)
    mae = TouchMAE(get_arch("tiny")).train()
    mae.decoder_embed.requires_grad_(False)  # a caller's own trainability setting must survive
    before = {k: v.clone() for k, v in mae.state_dict().items()}
    res = adapt_sensor_slot(mae, frames, steps=40, lr=3e-2, batch_size=8, seed=0)
    after = mae.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["encoder.sensor_tokens"]
    rows = (before["encoder.sensor_tokens"] != after["encoder.sensor_tokens"]).flatten(1).any(1)
    assert rows.tolist() == [False] * 5 + [True] + [False] * 4  # slot 5 only
    assert res.slot == 5 and len(res.losses) == 40
    assert res.eval_after < res.eval_before - 1e-3  # same frames and masks before and after
    assert mae.training and not mae.decoder_embed.weight.requires_grad
    assert mae.encoder.blocks[0].mlp.fc1.weight.requires_grad


def test_clips_and_model_wrapper_and_init(frames):
    torch.manual_seed(0)
    model = AnyTouchModel(get_arch("tiny"), towers=False)
    table = model.encoder.sensor_tokens
    clips = frames[:8].unsqueeze(1).repeat(1, 4, 1, 1, 1)  # video objective: (N, 4, 3, H, W)
    res = adapt_sensor_slot(model, clips, slot=7, init="gelsight", steps=0)
    assert res.slot == 7 and torch.equal(table[7], table[0])  # copied, not trained (0 steps)
    assert res.eval_before == res.eval_after
    with pytest.raises(ValueError, match="slot 3 is not free"):
        adapt_sensor_slot(model, frames, slot=3, steps=1)
    with pytest.raises(ValueError, match="frames must be"):
        adapt_sensor_slot(model, frames[0], steps=1)
    with pytest.raises(TypeError, match="MAE decoder is needed"):
        adapt_sensor_slot(model.encoder, frames, steps=1)
