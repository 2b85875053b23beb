"""scripts/gpu_check.py: the CPU dry run exercises every code path; without CUDA the default run says so."""
import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_one_full_table(capsys):
    rows = _gpu_check().main(["--device", "cpu", "--tiny"])
    assert [r[0] for r in rows] == ["stage-1 step (image/clip mixed)"] + [
        f"stage-2 step ({k})" for k in ("image", "video", "image_cross", "video_cross")] + [
        "device augmentation (images, 32px)", "device augmentation (clips, 32px)"] + [
        "encoder inference (bf16 images)"] * 3 + ["bf16 vs fp32 features"]
    assert [r[1] for r in rows[7:10]] == [1, 4, 8]
    table = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + len(rows)  # the header, then one line per measurement
    cos = float(rows[-1][3].split()[-1])
    assert 0.99 < cos <= 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_without_cuda_says_so(capsys):
    assert _gpu_check().main([]) == []
    assert "no CUDA device" in capsys.readouterr().out
