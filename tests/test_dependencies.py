"""Every declared dependency is used by the library; timm's weight-decay groups are the original's
(docs/original/recipe.md#optimiser-and-schedule)."""
import re
from pathlib import Path

import pytest
import torch.nn as nn

from anytouch.engine.optim import param_groups_weight_decay
from anytouch.models import AnyTouchModel, get_arch

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"open_clip_torch": "open_clip", "pillow": "PIL", "opencv-python-headless": "cv2",
           "scikit-learn": "sklearn", "pyyaml": "yaml"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_every_core_dependency_is_imported_by_the_library():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    source = "\n".join(p.read_text() for p in (ROOT / "anytouch").rglob("*.py"))
    unused = [d for d in map(_name, project["dependencies"])
              if not re.search(rf"^\s*(import|from) {re.escape(MODULES.get(d, d))}[\s.]", source, re.M)]
    assert not unused, f"declared in pyproject.toml but never imported by anytouch: {unused} (move to an extra)"
    pinned = {_name(ln) for ln in (ROOT / "requirements.txt").read_text().splitlines() if ln and ln[0].isalnum()}
    # lerobot cannot share an environment with the pinned torch (pyproject.toml says why); its test skips without it
    extras = [_name(r) for name, reqs in project["optional-dependencies"].items() if name != "lerobot" for r in reqs]
    assert set(map(_name, project["dependencies"])) | set(extras) <= pinned  # `pip install -r` covers the tests


def _spec_rule(model: nn.Module):
    """The grouping of docs/original/recipe.md#optimiser-and-schedule, written out: no decay for ndim <= 1 or a
    ``.bias``; frozen parameters left out."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return ([n for n, p in trainable if p.ndim <= 1 or n.endswith(".bias")],
            [n for n, p in trainable if not (p.ndim <= 1 or n.endswith(".bias"))])


def test_timm_groups_equal_the_spec_rule_and_keep_two_groups():
    model = AnyTouchModel(get_arch("tiny"))  # LoRA, towers, sensor tokens, logit scale
    model.vision.requires_grad_(False)
    for wd in (0.05, 0.0):
        groups = param_groups_weight_decay(model, wd)
        assert [g["weight_decay"] for g in groups] == [0.0, wd]
        assert tuple(g["names"] for g in groups) == _spec_rule(model)
        named = dict(model.named_parameters())
        assert all(p is named[n] for g in groups for p, n in zip(g["params"], g["names"]))
    only_1d = nn.LayerNorm(4)
    assert [len(g["params"]) for g in param_groups_weight_decay(only_1d, 0.1)] == [2, 0]  # an empty group is kept
