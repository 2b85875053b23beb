"""anytouch.preprocess: one frame or a clip (list, (T,H,W,3) array, (T,3,H,W) / (T,H,W,3) tensor) -> model input."""
import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.preprocess import preprocess_touch


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)  # (T, H, W, 3)


def test_4d_array_and_tensor_are_clips(frames):
    ref = preprocess_touch([Image.fromarray(f) for f in frames], size=28)
    assert ref.shape == (3, 3, 28, 28)
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (T, 3, H, W)
    for clip in (frames, torch.from_numpy(frames), chw, chw.float() / 255, list(frames), tuple(chw)):
        torch.testing.assert_close(preprocess_touch(clip, size=28), ref, rtol=0, atol=1e-6)
    for t in range(3):  # every frame preprocessed on its own, exactly like a single image
        torch.testing.assert_close(preprocess_touch(frames[t], size=28), ref[t], rtol=0, atol=1e-6)
        torch.testing.assert_close(preprocess_touch(chw[t], size=28), ref[t], rtol=0, atol=1e-6)


def test_single_frame_shapes(frames):
    assert preprocess_touch(frames[0], size=28).shape == (3, 28, 28)
    assert preprocess_touch(frames[0, ..., 0], size=28).shape == (3, 28, 28)  # grey (H, W)
    assert preprocess_touch(frames[:1], size=28).shape == (1, 3, 28, 28)  # a one-frame clip stays a clip


def test_bad_clip_shapes(frames):
    with pytest.raises(ValueError, match=r"shape \(1, 3, 40, 50, 3\)"):
        preprocess_touch(frames[None], size=28)
    with pytest.raises(ValueError, match="empty clip"):
        preprocess_touch(frames[:0], size=28)
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_touch(torch.zeros(2, 5, 40, 50), size=28)


@pytest.mark.parametrize("layout", ["BTHWC", "BTCHW", "BHWC", "BCHW", "float"])
def test_batch_preprocessing_equals_the_per_sample_function(layout):
    from anytouch.preprocess import preprocess_touch_batch

    rng = np.random.default_rng(1)
    raw = torch.from_numpy(rng.integers(0, 256, (2, 3, 40, 50, 3), dtype=np.uint8))  # (B, T, H, W, 3)
    ref = torch.stack([preprocess_touch(list(clip.numpy()), size=28) for clip in raw])  # (B, T, 3, 28, 28)
    batch = {"BTHWC": raw, "BTCHW": raw.permute(0, 1, 4, 2, 3), "BHWC": raw[:, 0],
             "BCHW": raw[:, 0].permute(0, 3, 1, 2), "float": raw.float() / 255}[layout]
    out = preprocess_touch_batch(batch, size=28)
    torch.testing.assert_close(out, ref if layout in ("BTHWC", "BTCHW", "float") else ref[:, 0], rtol=0, atol=1e-5)


def test_batch_preprocessing_rejects_what_it_cannot_read():
    from anytouch.preprocess import preprocess_touch_batch

    with pytest.raises(ValueError, match="preprocess_touch_batch expects"):
        preprocess_touch_batch(torch.zeros(40, 50, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3 colour channels"):
        preprocess_touch_batch(torch.zeros(2, 4, 40, 50, dtype=torch.uint8))
    with pytest.raises(TypeError, match="int32"):
        preprocess_touch_batch(torch.zeros(2, 40, 50, 3, dtype=torch.int32))
