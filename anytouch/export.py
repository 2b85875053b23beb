"""Export the AnyTouch touch encoder to ONNX and TorchScript, each checked against the PyTorch output.

The exported graph takes ``touch`` (B, 3, H, W) ImageNet-normalised frames (``input="image"``) or (B, 3, 3, H, W)
clips (``input="clip"``) and ``sensor`` (B,) int64 ids (-1 = universal), and returns ``features`` (B, P), the
unnormalised ``cls`` (or ``global``) embedding; the batch axis is dynamic. Both formats are traced
(``torch.jit.trace``; ONNX through the TorchScript-based exporter, ``dynamo=False``): the ``torch.export``-based
ONNX exporter stops at the sensor-id range check in ``anytouch.sensors.sensor_tensor``, a data-dependent branch.
The check then happens at trace time only, so the exported files index the sensor table without validating ids.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

__all__ = ["ExportedEncoder", "ExportCheck", "export_encoder"]


class ExportedEncoder(nn.Module):
    """``(touch, sensor ids) -> features``: the traceable face of a TouchEncoder."""

    def __init__(self, encoder: nn.Module, pooling: str = "cls"):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling

    def forward(self, touch: torch.Tensor, sensor: torch.Tensor) -> torch.Tensor:
        return self.encoder(touch, sensor, pooling=self.pooling)


@dataclass
class ExportCheck:
    format: str  # "onnx" | "torchscript"
    path: Path
    max_abs_diff: Optional[float]  # vs. PyTorch on a batch of another size than the traced one; None = not run
    checked_with: str  # what ran the exported file


def _example(encoder, batch: int, clip: bool, seed: int, every_sensor: bool = False):
    """A random input of ``batch`` samples; ``every_sensor``: one sample per sensor id instead (-1 first)."""
    s = encoder.image_size
    g = torch.Generator().manual_seed(seed)
    sensor = (torch.arange(-1, encoder.num_sensors - 1) if every_sensor
              else torch.randint(-1, encoder.num_sensors - 1, (batch,), generator=g))
    shape = (len(sensor), encoder.num_frames, 3, s, s) if clip else (len(sensor), 3, s, s)
    return torch.randn(shape, generator=g), sensor


def _onnx(wrapper, example, path: Path, opset: int):
    if importlib.util.find_spec("onnx") is None:  # the exporter serialises through it
        raise ImportError("ONNX export needs the onnx package: pip install onnx (or pip install -e '.[export]')")
    dyn = {"touch": {0: "batch"}, "sensor": {0: "batch"}, "features": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about the (trace-time) input checks, deprecation notice
        torch.onnx.export(wrapper, example, str(path), input_names=["touch", "sensor"], output_names=["features"],
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)


def _run_onnx(path: Path, touch, sensor):
    """Run with onnxruntime when installed; else only validate the graph with onnx.checker."""
    try:
        import onnxruntime as ort
    except ImportError:
        import onnx

        onnx.checker.check_model(str(path))
        return None, "onnx.checker only (pip install onnxruntime to compare outputs)"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"touch": touch.numpy(), "sensor": sensor.numpy()})[0]
    return torch.from_numpy(out), f"onnxruntime {ort.__version__}"


@torch.no_grad()
def export_encoder(encoder: nn.Module, out_dir: Union[str, Path], formats: Sequence[str] = ("onnx", "torchscript"),
                   input: str = "image", pooling: str = "cls", opset: int = 17, name: str = "touch_encoder",
                   seed: int = 0) -> Dict[str, ExportCheck]:
    """Export ``encoder`` (a TouchEncoder, on CPU in fp32) and check each file against PyTorch.

    The trace uses a batch of 2; the check runs one sample per sensor id (-1 to ``num_sensors - 2``; -1 is the
    last slot), a batch size never traced, so it also proves the batch axis is dynamic. Returns {format: ExportCheck}; files are ``<out_dir>/<name>.onnx`` and ``<name>.torchscript.pt``.
    """
    if input not in ("image", "clip"):
        raise ValueError(f"input={input!r}; expected 'image' or 'clip'")
    unknown = set(formats) - {"onnx", "torchscript"}
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; expected onnx and/or torchscript")
    encoder = encoder.float().cpu().eval()
    wrapper = ExportedEncoder(encoder, pooling).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    example = _example(encoder, 2, input == "clip", seed)
    touch, sensor = _example(encoder, 0, input == "clip", seed + 1, every_sensor=True)
    ref = wrapper(touch, sensor)
    checks: Dict[str, ExportCheck] = {}
    if "onnx" in formats:
        path = out_dir / f"{name}.onnx"
        _onnx(wrapper, example, path, opset)
        out, how = _run_onnx(path, touch, sensor)
        diff = None if out is None else float((out - ref).abs().max())
        checks["onnx"] = ExportCheck("onnx", path, diff, how)
    if "torchscript" in formats:
        path = out_dir / f"{name}.torchscript.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about the trace-time input checks
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        traced.save(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            out = torch.jit.load(str(path))(touch, sensor)
        checks["torchscript"] = ExportCheck("torchscript", path, float((out - ref).abs().max()),
                                            f"torch.jit.load (torch {torch.__version__})")
    return checks
