"""The exported touch encoder (anytouch.export): sensor ids validated inside the graph, input contract stored."""
import json
import warnings

import pytest
import torch

from anytouch.export import export_encoder
from anytouch.models.config import get_arch
from anytouch.models.touch_encoder import TouchEncoder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    enc = TouchEncoder(get_arch("tiny")).eval()
    out = tmp_path_factory.mktemp("export")
    export_encoder(enc, out, input="image")
    return enc, out


def test_out_of_range_sensor_ids_give_nan_rows_in_both_formats(exported):
    enc, out = exported
    n = enc.num_sensors
    x = torch.randn(6, 3, enc.image_size, enc.image_size)
    sensor = torch.tensor([-2, n, 12, -1, 0, n - 1])  # -2 used to read slot n-2; 12 failed inside onnxruntime
    with torch.no_grad():
        ref = enc(x[3:], sensor[3:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still TorchScript's loader
        ts = torch.jit.load(str(out / "touch_encoder.torchscript.pt"))
    results = {"torchscript": ts(x, sensor).detach()}
    try:
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        sess = ort.InferenceSession(str(out / "touch_encoder.onnx"), providers=["CPUExecutionProvider"])
        results["onnx"] = torch.from_numpy(sess.run(None, {"touch": x.numpy(), "sensor": sensor.numpy()})[0])
    for fmt, got in results.items():
        assert torch.isnan(got[:3]).all(), fmt
        torch.testing.assert_close(got[3:], ref, atol=1e-4, rtol=0, msg=fmt)


def test_input_contract_is_stored_with_each_file(exported):
    import onnx

    enc, out = exported
    meta = {p.key: p.value for p in onnx.load(str(out / "touch_encoder.onnx")).metadata_props}
    assert json.loads(meta["anytouch.mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["anytouch.std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert meta["anytouch.image_size"] == str(enc.image_size) and meta["anytouch.num_frames"] == "1"
    assert f"0..{enc.num_sensors - 2}" in meta["anytouch.sensor_ids"] and "NaN" in meta["anytouch.sensor_ids"]
    files = {"anytouch_input.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(out / "touch_encoder.torchscript.pt"), _extra_files=files)
    assert json.loads(files["anytouch_input.json"]) == meta
