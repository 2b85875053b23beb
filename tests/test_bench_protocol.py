"""Benchmark heads and protocol: the attentive pooler against a direct computation, nested budgets, selection on
validation with the test split touched once."""
import math

import pytest
import torch
import torch.nn.functional as F

from anytouch.bench.heads import AttentivePooler, build_head
from anytouch.bench.protocol import ProtocolConfig, run_cell
from anytouch.bench.tasks import budget_indices
from anytouch.bench.runner import CachedSource
from anytouch.bench.features import Features
from fixtures_bench import FakeScorer, FakeTask


def test_attentive_pooler_matches_a_direct_computation():
    torch.manual_seed(0)
    pool = AttentivePooler(16, num_heads=4)
    x = torch.randn(3, 7, 16)
    kv = F.layer_norm(x, (16,), pool.norm_kv.weight, pool.norm_kv.bias) @ pool.kv.weight.T + pool.kv.bias
    k, v = kv[..., :16], kv[..., 16:]
    q = pool.query[0, 0] @ pool.q.weight.T + pool.q.bias  # the query itself is not normalised
    out = []
    for h in range(4):
        s = slice(4 * h, 4 * h + 4)
        att = (k[..., s] @ q[s] / 2.0).softmax(-1)  # (B, N)
        out.append(torch.einsum("bn,bnd->bd", att, v[..., s]))
    y = pool.query[0] + torch.cat(out, -1) @ pool.proj.weight.T + pool.proj.bias
    y = y + pool.mlp(pool.norm_mlp(y))
    assert torch.allclose(pool(x), y, atol=1e-5)


def test_attentive_pooler_size_and_heads_rule():
    pool = AttentivePooler(768, num_heads=12)
    assert sum(p.numel() for p in pool.parameters()) == 7_088_640  # upstream's 7.09 M at D=768
    assert AttentivePooler(384).num_heads == 6  # width // 64 by default
    with pytest.raises(ValueError, match="not divisible by num_heads=5"):
        AttentivePooler(384, num_heads=5)


def test_heads_output_sizes_per_kind():
    tok, pooled = torch.randn(2, 5, 8), torch.randn(2, 4)
    assert build_head("linear", "classification", 7, 8, 4)(tok, pooled).shape == (2, 7)
    assert build_head("attentive", "binary", 1, 8, 4)(tok, pooled).shape == (2, 1)
    assert build_head("attentive", "regression", 3, 8, 4, hidden=6)(tok, pooled).shape == (2, 3)
    with pytest.raises(ValueError, match="unknown head 'mlp'"):
        build_head("mlp", "binary", 1, 8, 4)


def test_budgets_without_labels_are_one_stratum():
    """Regression tasks (no labels): one seeded stratum, ceil(budget · n); nesting and stratification are tested
    with the task catalogue (test_bench_data)."""
    assert len(budget_indices(10, 0.33, 0)) == 4 and len(budget_indices(10, 0.01, 0)) == 1
    assert set(budget_indices(10, 0.33, 0)) <= set(budget_indices(10, 0.5, 0))
    with pytest.raises(ValueError, match="budget=0"):
        budget_indices(10, 0, 0)


def _source(n, d, seed, kind):
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(n, d, generator=g)
    target = (pooled[:, 0] > 0).long() if kind != "regression" else torch.stack([pooled[:, 0] * 3 + 1, pooled[:, 1]], 1)
    return CachedSource(Features(pooled[:, None].repeat(1, 3, 1), pooled, target, ["g"] * n))


class SpyScorer(FakeScorer):
    def score(self, task, pred, target, groups):
        out = super().score(task, pred, target, groups)
        self.calls[-1] = (id(target), out)
        return out


@pytest.mark.parametrize("kind,metric", [("binary", "accuracy"), ("regression", "rmse")])
def test_selection_is_on_val_and_test_is_scored_once(kind, metric):
    task = FakeTask("t", "fake", kind, 2 if kind == "regression" else 1, (metric,))
    train, val, test = _source(64, 8, 0, kind), _source(32, 8, 1, kind), _source(32, 8, 2, kind)
    scorer = SpyScorer()
    cfg = ProtocolConfig(epochs=6, lr=3e-2, batch_size=16)
    res = run_cell(task, "linear", (8, 8), train, torch.arange(64), val, test, cfg, 0, scorer, torch.device("cpu"))
    targets = [c[0] for c in scorer.calls]
    assert targets.count(id(test.target)) == 1 and targets[-1] == id(test.target)  # once, after training
    assert targets.count(id(val.target)) == cfg.epochs
    curve = res["val_curve"]
    best = max(curve) if metric == "accuracy" else min(curve)
    assert res["selected_epoch"] == curve.index(best) and res["val"][metric] == best
    if kind == "regression":  # predictions are back in the target's units: the fit beats predicting the mean
        assert res["test"]["rmse"] < test.target.float().std(0).mean().item()
    again = run_cell(task, "linear", (8, 8), train, torch.arange(64), val, test, cfg, 0, FakeScorer(),
                     torch.device("cpu"))
    assert again["test"] == res["test"] and again["val_curve"] == curve  # seeded end to end
    assert math.isfinite(res["train_loss"][-1]) and res["train_loss"][-1] < res["train_loss"][0]
