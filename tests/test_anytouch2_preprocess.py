"""AnyTouch 2 preprocessing: background subtraction in float before the resize, CLIP statistics, batched and
per-sample backgrounds, against an independent torchvision pipeline (docs/anytouch2.md)."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from anytouch.preprocess import (BACKGROUND_OFFSET, CLIP_MEAN, CLIP_STD, preprocess_touch, preprocess_touch2,
                                 preprocess_touch2_batch, preprocess_touch_batch)

from anytouch2_fixtures import tiny_encoder


def reference(frames_u8, bg_u8, size):
    """Upstream order with torchvision: (f - bg + 130/255).clamp -> Resize(bilinear, antialias) -> CLIP Normalize.
    frames_u8 (T,H,W,3), bg_u8 (H,W,3) -> (T,3,size,size)."""
    f = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 255
    b = torch.from_numpy(bg_u8).permute(2, 0, 1).float() / 255
    x = (f - b + 130 / 255).clamp(0, 1)
    x = v2.Resize((size, size), antialias=True)(x)
    return v2.Normalize(CLIP_MEAN, CLIP_STD)(x)


@pytest.fixture
def clip_and_bg():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 4, 30, 40, 3), dtype=np.uint8)  # (B,T,H,W,3), not square
    bg = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)  # one background per sample
    return frames, bg


def test_matches_the_upstream_order_per_sample(clip_and_bg):
    frames, bg = clip_and_bg
    enc = tiny_encoder(4)
    out = enc.preprocess(torch.from_numpy(frames), background=torch.from_numpy(bg))
    assert out.shape == (2, 4, 3, 32, 32) and out.dtype == torch.float32
    for i in range(2):  # each sample with its own background
        torch.testing.assert_close(out[i], reference(frames[i], bg[i], 32), atol=1e-5, rtol=1e-5)
    chw = preprocess_touch2_batch(torch.from_numpy(frames).permute(0, 1, 4, 2, 3),
                                  torch.from_numpy(bg).permute(0, 3, 1, 2), size=32)
    torch.testing.assert_close(chw, out, atol=0, rtol=0)
    as_float = preprocess_touch2_batch(torch.from_numpy(frames) / 255.0, torch.from_numpy(bg) / 255.0, size=32)
    torch.testing.assert_close(as_float, out, atol=1e-6, rtol=1e-6)


def test_the_order_matters_and_no_background_only_resizes(clip_and_bg):
    frames, bg = clip_and_bg
    f, b = torch.from_numpy(frames[:1]), torch.from_numpy(bg[:1])
    ours = preprocess_touch2_batch(f, b, size=32)
    small = lambda t: torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", antialias=True)  # noqa: E731
    late = (small(f[0].permute(0, 3, 1, 2) / 255) - small(b.permute(0, 3, 1, 2) / 255) + BACKGROUND_OFFSET).clamp(0, 1)
    late = (late - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    assert (ours[0] - late).abs().max() > 1e-3  # resizing before the subtraction is a different input
    plain = preprocess_touch2_batch(f, None, size=32)
    ref = (small(f[0].permute(0, 3, 1, 2) / 255) - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    torch.testing.assert_close(plain[0], ref, atol=1e-5, rtol=1e-5)


def test_single_background_lists_and_pil(clip_and_bg):
    frames, bg = clip_and_bg
    batch = preprocess_touch2_batch(torch.from_numpy(frames[:1]), torch.from_numpy(bg[0]), size=32)
    pil = preprocess_touch2([Image.fromarray(f) for f in frames[0]], Image.fromarray(bg[0]), size=32)
    torch.testing.assert_close(pil, batch[0], atol=0, rtol=0)
    one = preprocess_touch2(frames[0, 0], bg[0], size=32)
    torch.testing.assert_close(one, batch[0, 0], atol=0, rtol=0)


def test_bad_backgrounds_are_named(clip_and_bg):
    frames, bg = clip_and_bg
    f = torch.from_numpy(frames)
    with pytest.raises(ValueError, match="got 1 background frames for a batch of 2"):
        preprocess_touch2_batch(f, torch.from_numpy(bg[:1]), size=32)
    with pytest.raises(ValueError, match="does not fit frames"):
        preprocess_touch2_batch(f, torch.from_numpy(bg[:, :20]), size=32)
    with pytest.raises(TypeError, match="background: unsupported dtype"):
        preprocess_touch2_batch(f, torch.from_numpy(bg).long(), size=32)


def test_anytouch1_helpers_gain_background_with_imagenet_statistics(clip_and_bg):
    frames, bg = clip_and_bg
    f, b = torch.from_numpy(frames[:1, :2]), torch.from_numpy(bg[:1])
    at1 = preprocess_touch_batch(f, 32, background=b)
    at2 = preprocess_touch2_batch(f, b, size=32)
    # same subtracted, resized pixels up to AnyTouch 1's 8-bit resize (one level); the statistics differ
    from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD

    pix1 = at1 * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    pix2 = at2 * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
    torch.testing.assert_close(pix1, pix2, atol=1.01 / 255, rtol=0)
    single = preprocess_touch(list(frames[0, :2]), size=32, background=bg[0])
    torch.testing.assert_close(single, at1[0], atol=0, rtol=0)
    torch.testing.assert_close(preprocess_touch_batch(f, 32), preprocess_touch(list(frames[0, :2]), size=32)[None])
