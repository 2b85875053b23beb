"""A new dataset is one new module (tests/example_source/pokes.py) plus its README: registering its spec makes it
buildable (real and synthetic), mixable into pre-training, writable as a synthetic tree, preparable and verifiable,
with no other file touched."""
import importlib.util
import os
import sys

import pytest
import torch

from anytouch.config import ConfigError, load_config
from anytouch.data import DataConfig, build_dataset, build_pretrain_set
from anytouch.data import prepare as P
from anytouch.data import registry
from anytouch.data.synthetic import SyntheticConfig
from anytouch.data.synthetic_tree import write_synthetic_tree
from anytouch.data.verify import verify
from anytouch.train.config import Stage1Config

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_probe as FP  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def pokes():
    spec = importlib.util.spec_from_file_location("pokes_example", os.path.join(HERE, "example_source", "pokes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "pokes" not in registry.names()
    registry.register(module.SPEC)
    yield module
    registry.unregister("pokes")
    assert "pokes" not in registry.names()


def test_a_new_source_is_one_module(pokes, tmp_path, capsys):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(pokes.SPEC)
    # synthetic twin: the spec's sensor, and stage-2 samples without vision / text like the declaration says
    ds = build_dataset("pokes", synthetic=SyntheticConfig(num_samples=3, render_size=16), stage=2, image_size=8,
                       vision_size=8)
    assert len(ds) == 3 and {ds[i]["sensor"] for i in range(3)} == {1}
    assert ds[0]["vision_flag"] == 0 and ds[0]["text_flag"] == 0
    # it joins the pre-training mix by its repeats key
    cfg = DataConfig(source="synthetic", repeats={"pokes": 2, "tag": 1}, synthetic=SyntheticConfig(num_samples=2))
    mix = build_pretrain_set(cfg, 1, "image", 8, 8)
    assert mix.counts == {"tag": (2, 1), "pokes": (2, 2)} and "pokes" in capsys.readouterr().out
    # synthetic tree -> the real loader -> verify
    counts = write_synthetic_tree(str(tmp_path / "tree"), names=["pokes"], sequences=2, frames=5, size=16,
                                  progress=False)
    assert counts == {"pokes": 10}
    real = build_dataset("pokes", root=str(tmp_path / "tree"), clip="video", image_size=8)
    assert len(real) == 2 * 2 and real[0]["touch"].shape == (4, 3, 8, 8)  # t = 3, 4 of each recording
    row = verify(str(tmp_path / "tree"), ["pokes"], progress=False)[0]
    assert (row["status"], row["samples"], row["files"]) == ("ok", 8, 8)
    # prepare from raw videos, through the CLI, then verify
    FP.write_video(str(tmp_path / "raw" / "a.mp4"), [40, 90, 140, 90])
    out = P.main(["pokes", "--raw", str(tmp_path / "raw"), "--root", str(tmp_path / "root")])
    assert out == {"recordings": 1, "index_rows": 3}
    assert verify(str(tmp_path / "root"), ["pokes"], progress=False)[0]["status"] == "ok"
    with pytest.raises(SystemExit):  # an option its step does not declare
        P.main(["pokes", "--raw", str(tmp_path / "raw"), "--root", str(tmp_path / "root"), "--rule", "all"])
    assert torch.is_tensor(build_dataset("pokes", root=str(tmp_path / "root"), image_size=8)[0]["touch"])


def test_registry_refuses_unknown_and_builtin_removal():
    with pytest.raises(ValueError, match="did you mean 'octopi'"):
        registry.get("octopy")
    with pytest.raises(ValueError, match="cannot be unregistered"):
        registry.unregister("tag")
    with pytest.raises(TypeError, match="DatasetSpec"):
        registry.register({"name": "x"})


def test_synthetic_data_is_a_named_setting():
    with pytest.raises(ConfigError, match="data.source=synthetic"):
        DataConfig(root="synthetic")
    with pytest.raises(ConfigError, match="data.source"):
        DataConfig(source="synth")
    cfg = load_config(Stage1Config, [], ["data=synthetic"])
    assert (cfg.data.source, cfg.data.root) == ("synthetic", "tactile_datasets")
