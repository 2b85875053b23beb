"""Device-side touch augmentation: batched result == per-sample torchvision reference; same draws as the recipe."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T

from anytouch.data.device_aug import (
    AUG_DIM, IDENTITY, apply_touch_aug, draw_touch_params, load_touch_uint8, reference_touch_aug, resize_uint8,
)
from anytouch.data.io import DataError
from anytouch.data.transforms import TouchTransform
from anytouch.engine.rng import seeded
from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_touch

# float32 ops in the same order as torchvision; hue goes through HSV, where rounding differs by a few ulps
TOL = 2e-5
LEVEL = 1 / 255 / min(IMAGENET_STD)  # one 8-bit level after normalisation


def _frames(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    x[..., :4, :4] = 128  # grey pixels: the hue step's max == min branch
    return x


def _params(n, seed=1):
    with seeded(seed):
        return torch.stack([draw_touch_params() for _ in range(n)])


@pytest.mark.parametrize("clip,grouped", [(False, True), (True, True), (False, False), (True, False)])
def test_batched_equals_reference(clip, grouped):
    n = 12
    x = _frames(n, 3, 3, 20, 24) if clip else _frames(n, 3, 20, 24)
    p = _params(n)
    p[0] = IDENTITY  # an evaluation sample in a training batch: normalisation only
    p[1, 2:6] = IDENTITY[2:6]  # flips without jitter
    out = apply_touch_aug(x, p, grouped=grouped)
    ref = torch.stack([reference_touch_aug(x[i], p[i]) for i in range(n)])
    assert out.shape == x.shape and out.dtype == torch.float32
    assert (out - ref).abs().max() < TOL
    assert len(torch.unique(p[2:, 6:], dim=0)) > 1  # several jitter orders were grouped


def test_each_sample_gets_its_own_parameters():
    x = _frames(1, 3, 16, 16).expand(4, -1, -1, -1).contiguous()
    p = _params(4)
    out = apply_touch_aug(x, p)
    assert all((out[i] - out[j]).abs().max() > 0.05 for i in range(4) for j in range(i))
    assert (apply_touch_aug(x[2:3], p[2:3])[0] - out[2]).abs().max() < TOL  # independent of the batch


def test_identity_is_normalisation_only():
    x = _frames(2, 3, 3, 8, 8)
    out = apply_touch_aug(x, IDENTITY.expand(2, -1).clone())
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(out * std, (x.float() / 255) - torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1),
                          atol=1e-6)


def _float_pipeline(size, train=True, antialias=True):
    """The former per-sample float pipeline on the worker (torchvision transforms, jitter on the CPU)."""
    steps = [T.ToDtype(torch.float32, scale=True),
             T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=antialias)]
    if train:
        steps += [T.RandomHorizontalFlip(0.5), T.RandomVerticalFlip(0.5), T.ColorJitter(0.4, 0.4, 0.5, 0.3)]
    return T.Compose(steps + [T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def test_draws_match_the_former_float_pipeline():
    """Same seed -> the former float pipeline and TouchTransform (uint8 worker side + device side) give the same
    frames: the parameters are drawn in torchvision's order, so resumed and seeded runs keep their augmentations."""
    x = _frames(3, 3, 16, 16)  # a clip already at the output size: the resize is the identity
    tf, old_tf = TouchTransform(16, train=True), _float_pipeline(16)
    for seed in range(6):
        with seeded(seed):
            old = old_tf(x)
        with seeded(seed):
            p = draw_touch_params()
        with seeded(seed):
            new = tf(x)
        assert (reference_touch_aug(x, p) - old).abs().max() < TOL and (new - old).abs().max() < TOL


def test_draw_distribution():
    p = _params(2000)
    assert 0.45 < p[:, 0].mean() < 0.55 and 0.45 < p[:, 1].mean() < 0.55
    lo, hi = p[:, 2:6].min(0).values, p[:, 2:6].max(0).values
    assert torch.all(lo >= torch.tensor([0.6, 0.6, 0.5, -0.3])) and torch.all(hi <= torch.tensor([1.4, 1.4, 1.5, 0.3]))
    assert torch.all(lo < torch.tensor([0.62, 0.62, 0.52, -0.28])) and torch.all(hi > torch.tensor([1.38, 1.38, 1.48, 0.28]))
    orders = p[:, 6:].long()
    assert torch.all(orders.sort(1).values == torch.arange(4))
    assert len(torch.unique(orders, dim=0)) == 24
    assert torch.equal(draw_touch_params(train=False), IDENTITY)
    with seeded(3):
        a = draw_touch_params()
    with seeded(3):
        assert torch.equal(draw_touch_params(), a)


def test_uint8_resize_within_one_level_of_the_float_resize():
    """preprocess_touch is the loaders' evaluation path (uint8 resize + identity parameters), and it stays within
    one 8-bit level (0.0175 after normalisation) of the former float resize, with or without antialiasing."""
    x = _frames(2, 3, 120, 160, seed=4)
    new = preprocess_touch(x, 56)
    assert torch.equal(new, apply_touch_aug(resize_uint8(x, 56)[None], IDENTITY[None])[0])  # one path
    old = _float_pipeline(56, train=False)(x)
    assert 0 < (new - old).abs().max() <= LEVEL + 1e-5
    sharp = _float_pipeline(56, train=False, antialias=False)(x)  # the original's stage-1 clips
    assert (TouchTransform(56, train=False, antialias=False)(x) - sharp).abs().max() <= LEVEL + 1e-5
    assert (sharp - old).abs().max() > 10 * LEVEL  # the two filters differ: the flag is passed through


def test_bad_inputs():
    x = _frames(2, 3, 8, 8)
    with pytest.raises(TypeError, match="uint8"):
        apply_touch_aug(x.float(), _params(2))
    with pytest.raises(ValueError, match=f"\\(2, {AUG_DIM}\\)"):
        apply_touch_aug(x, _params(3))
    with pytest.raises(ValueError, match="jitter"):
        draw_touch_params(jitter=(0.4, 0.4))


def test_load_touch_uint8(tmp_path):
    from PIL import Image
    paths = []
    for t, shape in enumerate([(40, 30), (40, 30), (41, 30)]):
        paths.append(str(tmp_path / f"{t}.png"))
        Image.fromarray(np.full((*shape, 3), 10 * t, np.uint8)).save(paths[-1])
    clip = load_touch_uint8(paths[:2], 16)
    assert clip.shape == (2, 3, 16, 16) and clip.dtype == torch.uint8 and clip[1].float().mean() == 10
    with pytest.raises(DataError, match="differ in size"):
        load_touch_uint8(paths, 16)
