"""The layered config system, architecture presets / HF config.json parsing, sensors, preprocessing, tokenizer."""
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.config import ConfigError, from_dict, load_config, parse_cli, save_config, to_dict
from anytouch.models.config import ARCH_PRESETS, arch_from_dict, arch_from_hf_config, get_arch
from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_touch, preprocess_vision, to_uint8_chw


@dataclass
class Optim:
    lr: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.99])


@dataclass
class Model:
    preset: str = "anytouch-l14"
    grad_checkpointing: bool = False


@dataclass
class Cfg:
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)
    epochs: int = 20
    repeats: Dict[str, int] = field(default_factory=lambda: {"tag": 1, "octopi": 1})
    note: Optional[str] = None


def test_layers_defaults_files_overrides(tmp_path):
    f1 = tmp_path / "a.yaml"
    f1.write_text("epochs: 5\noptim:\n  lr: 2.0e-4\n")
    f2 = tmp_path / "b.yaml"
    f2.write_text("epochs: 7\nrepeats:\n  tag: 2\n")
    cfg = load_config(Cfg, [f1, f2], ["optim.lr=1e-2", "model.grad_checkpointing=true", "repeats.octopi=3"])
    assert cfg.epochs == 7  # later file wins
    assert cfg.optim.lr == 1e-2 and isinstance(cfg.optim.lr, float)  # YAML 1.1 reads 1e-2 as str: coerced
    assert cfg.model.grad_checkpointing is True
    assert cfg.repeats == {"tag": 2, "octopi": 3}
    assert cfg.optim.betas == [0.9, 0.99]
    cfg2 = load_config(Cfg, [], ["optim.betas=[0.9,0.95]", "note=null"])
    assert cfg2.optim.betas == [0.9, 0.95] and cfg2.note is None


def test_unknown_key_names_key_and_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean 'lr'"):
        load_config(Cfg, [], ["optim.lrr=1"])
    f = tmp_path / "bad.yaml"
    f.write_text("optim:\n  weight_decy: 0.1\n")
    with pytest.raises(ConfigError, match=r"optim\.weight_decy"):
        load_config(Cfg, [f])
    with pytest.raises(ConfigError, match="not a valid int"):
        load_config(Cfg, [], ["epochs=abc"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(Cfg, [], ["epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, [tmp_path / "missing.yaml"])


def test_group_files(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("preset: tiny\ngrad_checkpointing: true\n")
    monkeypatch.setenv("ANYTOUCH_CONFIG_DIR", str(tmp_path))
    cfg = load_config(Cfg, [], ["model=tiny"])
    assert cfg.model.preset == "tiny" and cfg.model.grad_checkpointing
    with pytest.raises(ConfigError, match="available: .*tiny"):
        load_config(Cfg, [], ["model=huge"])


def test_roundtrip_and_cli(tmp_path):
    cfg = load_config(Cfg, [], ["epochs=3"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    back = load_config(Cfg, [path])
    assert back == cfg and from_dict(Cfg, to_dict(cfg)) == cfg
    files, ov = parse_cli(["--config", "x.yaml", "a.b=1", "--config=y.yaml"])
    assert files == ["x.yaml", "y.yaml"] and ov == ["a.b=1"]
    with pytest.raises(ConfigError):
        parse_cli(["stray"])


def test_print_config_shows_the_resolved_config(tmp_path, capsys):
    import yaml

    (tmp_path / "a.yaml").write_text("epochs: 7\nmodel: {preset: tiny}\n")
    with pytest.raises(SystemExit) as e:
        parse_cli(["--config", str(tmp_path / "a.yaml"), "optim.lr=0.5", "--print-config"], Cfg)
    assert e.value.code == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == to_dict(load_config(Cfg, [tmp_path / "a.yaml"], ["optim.lr=0.5"]))
    assert (shown["epochs"], shown["model"]["preset"], shown["optim"]["lr"]) == (7, "tiny", 0.5)
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):  # validated, not just echoed
        parse_cli(["epoch=3", "--print-config"], Cfg)


def test_presets_and_hf_config(tmp_path):
    paper = get_arch("anytouch-l14")
    assert (paper.touch.width, paper.touch.layers, paper.touch.heads, paper.projection_dim) == (1024, 24, 16, 768)
    assert paper.touch.num_patches == 256 and paper.decoder.width == 512 and paper.decoder.layer_norm_eps == 1e-12
    assert set(ARCH_PRESETS) >= {"anytouch-l14", "tiny"}
    # DataComp-style config.json; keys it omits take transformers' defaults
    cfg = {
        "projection_dim": 768,
        "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                        "num_hidden_layers": 12, "hidden_act": "gelu", "eos_token_id": 2},
        "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                          "num_hidden_layers": 24, "patch_size": 14, "hidden_act": "gelu"},
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    a = arch_from_hf_config(tmp_path)
    assert a.touch == paper.touch and a.vision == paper.vision and a.text == paper.text
    assert a.decoder == paper.decoder
    # omitted keys -> transformers defaults (vision patch 32, quick_gelu; text eos 49407)
    (tmp_path / "config.json").write_text(json.dumps({"vision_config": {}, "text_config": {}}))
    d = arch_from_hf_config(tmp_path / "config.json")
    assert d.touch.patch_size == 32 and d.touch.act == "quick_gelu" and d.text.eos_token_id == 49407
    assert d.projection_dim == 512
    assert arch_from_dict(paper.to_dict()) == paper
    with pytest.raises(ValueError, match="unknown architecture"):
        get_arch("vit-huge")


def test_hf_defaults_agree_with_transformers():
    transformers = pytest.importorskip("transformers")
    v, t = transformers.CLIPVisionConfig(), transformers.CLIPTextConfig()
    from anytouch.models import config as mc

    for k, val in mc._HF_VISION_DEFAULTS.items():
        assert getattr(v, k) == val, k
    for k, val in mc._HF_TEXT_DEFAULTS.items():
        assert getattr(t, k) == val, k
    assert transformers.CLIPConfig().projection_dim == mc._HF_TOP_DEFAULTS["projection_dim"]


def test_preprocess_matches_original_test_transform():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    a = preprocess_touch(Image.fromarray(arr), size=28)
    b = preprocess_touch(arr, size=28)
    c = preprocess_touch(torch.from_numpy(arr).permute(2, 0, 1), size=28)
    assert a.shape == (3, 28, 28)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    # torchvision's Resize(antialias) + ToTensor + Normalize, the original's test transform
    from torchvision.transforms import v2

    ref = v2.Compose([v2.ToImage(), v2.Resize((28, 28), antialias=True), v2.ToDtype(torch.float32, scale=True),
                      v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(Image.fromarray(arr))
    torch.testing.assert_close(a, ref, atol=2e-2, rtol=0)
    clip = preprocess_touch([arr, arr, arr], size=28)
    assert clip.shape == (3, 3, 28, 28) and torch.equal(clip[0], clip[2])
    assert preprocess_vision(arr, size=24).shape == (3, 24, 24)
    assert to_uint8_chw(np.zeros((5, 5), np.uint8)).shape == (3, 5, 5)
    with pytest.raises(ValueError, match="shape"):
        to_uint8_chw(np.zeros((5, 5, 7), np.uint8))
