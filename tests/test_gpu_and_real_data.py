"""Tiers behind markers: `pytest -m gpu` (a CUDA device) and `pytest -m data` (real datasets under
$ANYTOUCH_DATA_ROOT, laid out like the original tactile_datasets/)."""
import os

import pytest
import torch

from anytouch.models import TouchMAE, get_arch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_bf16_stage1_step_and_features_match_fp32():
    torch.manual_seed(0)
    m = TouchMAE(get_arch("tiny")).cuda()
    clip = torch.randn(4, 4, 3, 56, 56, device="cuda")
    noise = torch.rand(4, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = m(clip, [0, 1, 3, -1], noise=noise)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and m.encoder.patch_embed.weight.grad is not None
    ref = m(clip, [0, 1, 3, -1], noise=noise)["loss"]
    assert abs(out["loss"].item() - ref.item()) < 0.05 * abs(ref.item())
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        f16 = m.encoder(clip, "digit").float()
    f32 = m.encoder(clip, "digit")
    assert torch.nn.functional.cosine_similarity(f16, f32).min() > 0.99


@pytest.mark.data
def test_real_data_root_verifies_clean():
    root = os.environ.get("ANYTOUCH_DATA_ROOT")
    if not root:
        pytest.skip("set ANYTOUCH_DATA_ROOT to a tactile_datasets/ folder")
    from anytouch.data.verify import verify

    rows = verify(root, sample=200)
    found = [r for r in rows if r.get("samples", 0) > 0]
    assert found, f"no dataset found under {root}"
    bad = [r for r in found if r.get("missing", 0) or r.get("unreadable", 0)]
    assert not bad, f"missing or unreadable files: {bad}"
