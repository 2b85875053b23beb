"""Export the AnyTouch touch encoder to ONNX and TorchScript, each checked against the PyTorch output.

The exported graph takes ``touch`` (B, 3, H, W) ImageNet-normalised frames (``input="image"``) or (B, 3, 3, H, W)
clips (``input="clip"``) and ``sensor`` (B,) int64 ids (-1 = universal), and returns ``features`` (B, P), the
unnormalised ``cls`` (or ``global``) embedding; the batch axis is dynamic. Both formats are traced
(``torch.jit.trace``; ONNX through the TorchScript-based exporter, ``dynamo=False``): the ``torch.export``-based
ONNX exporter stops at the sensor-id range check in ``anytouch.sensors.sensor_tensor``, a data-dependent branch.
That check runs at trace time only, so the exported graph validates ids itself, without a branch: an id outside
-1..num_sensors-1 (what PyTorch accepts) gives a row of NaN features instead of another sensor's slot (-2 would
index slot num_sensors-2) or an out-of-bounds gather inside onnxruntime. The input contract (pixel range, mean and
std, size, frames, layout, valid sensor ids) is stored with each file: ONNX ``metadata_props`` and a TorchScript
extra file ``anytouch_input.json`` (:func:`input_contract`).
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn

from .preprocess import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ExportedEncoder", "ExportCheck", "export_encoder", "input_contract"]


class ExportedEncoder(nn.Module):
    """``(touch, sensor ids) -> features``: the traceable face of a TouchEncoder.

    Rows whose sensor id is outside -1..num_sensors-1 come out as NaN (a branch-free check that survives tracing);
    the other rows are exactly the encoder's output.
    """

    def __init__(self, encoder: nn.Module, pooling: str = "cls"):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling

    def forward(self, touch: torch.Tensor, sensor: torch.Tensor) -> torch.Tensor:
        valid = (sensor >= -1) & (sensor < self.encoder.num_sensors)
        feats = self.encoder(touch, torch.where(valid, sensor, torch.full_like(sensor, -1)), pooling=self.pooling)
        valid = valid.reshape(valid.shape + (1,) * (feats.ndim - 1))  # (B, 1) for features, (B, 1, 1) for tokens
        return torch.where(valid, feats, torch.full_like(feats, float("nan")))


def input_contract(encoder: nn.Module, input: str = "image", pooling: str = "cls") -> Dict[str, str]:
    """What an exported encoder expects and returns, as string key/values (stored in the exported files)."""
    s, t = encoder.image_size, encoder.num_frames
    return {
        "anytouch.touch_layout": f"(B, 3, {s}, {s})" if input == "image" else f"(B, {t}, 3, {s}, {s})",
        "anytouch.image_size": str(s),
        "anytouch.num_frames": "1" if input == "image" else str(t),
        "anytouch.preprocess": "RGB scaled to [0, 1], resized to image_size x image_size (bilinear, antialiased), "
                               "then (x - mean) / std per channel",
        "anytouch.mean": json.dumps(list(IMAGENET_MEAN)),
        "anytouch.std": json.dumps(list(IMAGENET_STD)),
        "anytouch.sensor_ids": f"int64 (B,): -1 = universal, 0..{encoder.num_sensors - 2} = sensor slots "
                               f"({encoder.num_sensors - 1} is the universal slot too); any other id gives NaN features",
        "anytouch.output": f"features (B, P), unnormalised {pooling} embedding",
    }


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


def _onnx(wrapper, example, path: Path, opset: int, contract: Dict[str, str]):
    if importlib.util.find_spec("onnx") is None:  # the exporter serialises through it
        raise ImportError("ONNX export needs the onnx package: pip install onnx (or pip install -e '.[export]')")
    dyn = {"touch": {0: "batch"}, "sensor": {0: "batch"}, "features": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about the (trace-time) input checks, deprecation notice
        torch.onnx.export(wrapper, example, str(path), input_names=["touch", "sensor"], output_names=["features"],
                          dynamic_axes=dyn, opset_version=opset, dynamo=False)
    import onnx  # optional dependency (the export extra)

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, contract)
    onnx.save(model, str(path))


def _run_onnx(path: Path, touch, sensor):
    """Run with onnxruntime when installed; else only validate the graph with onnx.checker."""
    try:  # optional dependencies (the export extra): only this check needs them
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
    last slot), a batch size never traced, so it also proves the batch axis is dynamic. Returns {format: ExportCheck};
    files are ``<out_dir>/<name>.onnx`` and ``<name>.torchscript.pt``, each carrying :func:`input_contract`.
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
    contract = input_contract(encoder, input, pooling)
    checks: Dict[str, ExportCheck] = {}
    if "onnx" in formats:
        path = out_dir / f"{name}.onnx"
        _onnx(wrapper, example, path, opset, contract)
        out, how = _run_onnx(path, touch, sensor)
        diff = None if out is None else float((out - ref).abs().max())
        checks["onnx"] = ExportCheck("onnx", path, diff, how)
    if "torchscript" in formats:
        path = out_dir / f"{name}.torchscript.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about the trace-time input checks
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        traced.save(str(path), _extra_files={"anytouch_input.json": json.dumps(contract, indent=1)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            out = torch.jit.load(str(path))(touch, sensor)
        checks["torchscript"] = ExportCheck("torchscript", path, float((out - ref).abs().max()),
                                            f"torch.jit.load (torch {torch.__version__})")
    return checks
