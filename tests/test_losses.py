"""Stage-2 losses (anytouch/losses.py) against naive references: every InfoNCE term, flag masking, the vision-text
intersection, the matching loss on known embeddings, the logit-scale clamp, and the cross-rank gather (2 gloo
processes)."""
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from anytouch.engine.dist import shutdown
from anytouch.losses import alignment_loss, info_nce, matching_loss


def naive_info_nce(a, b, scale):
    """(mean_i CE(row i of s·a·bᵀ) + mean_j CE(row j of s·b·aᵀ)) / 2 with explicit loops over python floats."""
    a = [[float(v) for v in r] for r in torch.nn.functional.normalize(a, dim=-1)]
    b = [[float(v) for v in r] for r in torch.nn.functional.normalize(b, dim=-1)]
    n = len(a)

    def ce_rows(x, y):
        total = 0.0
        for i in range(n):
            logits = [scale * sum(p * q for p, q in zip(x[i], y[j])) for j in range(n)]
            total += -logits[i] + math.log(sum(math.exp(v) for v in logits))
        return total / n

    return (ce_rows(a, b) + ce_rows(b, a)) / 2


def rows(x, flag):
    return x[[i for i, f in enumerate(flag) if f]]


def make_batch(b=8, p=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    touch, vision, text = (torch.randn(b, p, generator=g, dtype=torch.float64) for _ in range(3))
    return touch, vision, text


VF = [1, 0, 1, 1, 0, 1, 1, 0]
TF = [1, 1, 0, 1, 0, 0, 1, 1]


def run_align(touch, vision, text, vf, tf, logit_scale=math.log(1 / 0.07), **kw):
    vfl, tfl = torch.tensor(vf), torch.tensor(tf)
    v = rows(vision, vf) if any(vf) else None
    t = rows(text, tf) if any(tf) else None
    return alignment_loss(touch, v, t, vfl, tfl, torch.tensor(logit_scale, dtype=touch.dtype), **kw)


def test_info_nce_matches_naive_loop():
    a, b, _ = make_batch(5, 4)
    got = info_nce(torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1),
                   torch.tensor(7.0, dtype=a.dtype))
    assert got.item() == pytest.approx(naive_info_nce(a, b, 7.0), rel=1e-10)


def test_each_alignment_term_matches_naive_loop_with_flags():
    touch, vision, text = make_batch()
    s = 1 / 0.07
    out = run_align(touch, vision, text, VF, TF)
    both = [v and t for v, t in zip(VF, TF)]
    ref_tv = naive_info_nce(rows(touch, VF), rows(vision, VF), s)
    ref_vt = naive_info_nce(rows(text, both), rows(vision, both), s)
    ref_lt = naive_info_nce(rows(touch, TF), rows(text, TF), s)
    assert out["loss_touch_vision"].item() == pytest.approx(ref_tv, rel=1e-9)
    assert out["loss_vision_text"].item() == pytest.approx(ref_vt, rel=1e-9)
    assert out["loss_touch_text"].item() == pytest.approx(ref_lt, rel=1e-9)
    # the original's weighting: the touch-text term is not halved (docs/original/recipe.md#stage-2-alignment-loss)
    assert out["loss"].item() == pytest.approx(1.0 * ref_tv + 0.2 * ref_vt + 2 * 1.0 * ref_lt, rel=1e-9)
    halved = run_align(touch, vision, text, VF, TF, alpha_vt=0.5, alpha_vl=0.3, alpha_lt=0.7, halve_touch_text=True)
    assert halved["loss"].item() == pytest.approx(0.5 * ref_tv + 0.3 * ref_vt + 0.7 * ref_lt, rel=1e-9)


def test_flagged_pairs_equal_dropping_the_rows():
    touch, vision, text = make_batch(seed=1)
    out = run_align(touch, vision, text, VF, TF)
    keep_v = [i for i, f in enumerate(VF) if f]
    dropped = run_align(touch[keep_v], vision[keep_v], text[keep_v], [1] * len(keep_v), [1] * len(keep_v))
    assert out["loss_touch_vision"].item() == pytest.approx(dropped["loss_touch_vision"].item(), rel=1e-12)
    keep_t = [i for i, f in enumerate(TF) if f]
    dropped = run_align(touch[keep_t], vision[keep_t], text[keep_t], [1] * len(keep_t), [1] * len(keep_t))
    assert out["loss_touch_text"].item() == pytest.approx(dropped["loss_touch_text"].item(), rel=1e-12)
    keep_both = [i for i in range(len(VF)) if VF[i] and TF[i]]
    dropped = run_align(touch[keep_both], vision[keep_both], text[keep_both], [1] * 3, [1] * 3)
    assert out["loss_vision_text"].item() == pytest.approx(dropped["loss_vision_text"].item(), rel=1e-12)
    # the contents of unflagged rows must not matter at all
    noisy_v, noisy_t = vision.clone(), text.clone()
    noisy_v[[i for i, f in enumerate(VF) if not f]] = 1e3
    noisy_t[[i for i, f in enumerate(TF) if not f]] = -1e3
    assert run_align(touch, noisy_v, noisy_t, VF, TF)["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-12)


def test_absent_terms_contribute_zero():
    touch, vision, text = make_batch()
    only_text = run_align(touch, vision, text, [0] * 8, TF)
    assert set(only_text) == {"loss", "loss_touch_text", "logit_scale"}
    assert only_text["loss"].item() == pytest.approx(2 * only_text["loss_touch_text"].item())
    none = run_align(touch, vision, text, [0] * 8, [0] * 8)
    assert set(none) == {"loss", "logit_scale"} and none["loss"].item() == 0.0
    # a vision-text intersection of one sample is a 1x1 matrix: log-softmax of one logit, loss 0
    one = run_align(touch, vision, text, [1, 0, 0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0, 0, 1])
    assert one["loss_vision_text"].item() == pytest.approx(0.0, abs=1e-12)


def test_logit_scale_clamp():
    touch, vision, text = make_batch()
    cap = math.log(100)
    high = run_align(touch, vision, text, VF, TF, logit_scale=6.0, max_logit_scale=cap)
    at_cap = run_align(touch, vision, text, VF, TF, logit_scale=cap)
    free = run_align(touch, vision, text, VF, TF, logit_scale=6.0)
    assert high["loss"].item() == pytest.approx(at_cap["loss"].item(), rel=1e-12)
    assert free["loss"].item() != pytest.approx(at_cap["loss"].item(), rel=1e-3)
    assert high["logit_scale"].item() == pytest.approx(cap)


def test_matching_loss_on_known_embeddings():
    head = nn.Linear(3, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 1.0, -1.0]]))
        head.bias.fill_(0.5)
    anchor = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0]])  # normalised: e1, e3
    positive = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # e1, e3
    negative = torch.tensor([[0.0, 4.0, 0.0], [0.0, 3.0, 4.0]])  # e2, (0, .6, .8)
    # products: e1⊙e1 = e1 -> 2.5; e3⊙e3 = e3 -> -0.5; e1⊙e2 = 0 -> 0.5; e3⊙(0,.6,.8) = (0,0,.8) -> -0.3
    out = matching_loss(anchor, positive, negative, head, cross_alpha=0.1)
    softplus = lambda x: math.log1p(math.exp(x))  # BCE-with-logits: target 1 -> softplus(-z), 0 -> softplus(z)
    pos = (softplus(-2.5) + softplus(0.5)) / 2
    neg = (softplus(0.5) + softplus(-0.3)) / 2
    assert out["loss_pos"].item() == pytest.approx(pos, rel=1e-6)
    assert out["loss_neg"].item() == pytest.approx(neg, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.1 * (pos + neg), rel=1e-6)
    assert out["acc"].item() == pytest.approx(2 / 4)  # pos 2.5 right, pos -0.5 wrong, neg 0.5 wrong, neg -0.3 right


# -- negatives gathered across ranks --------------------------------------------------------------------------------
RANK_FLAGS = {0: ([1, 1, 0, 1], [1, 0, 1, 1]), 1: ([0, 0, 0, 0], [1, 1, 0, 1])}  # rank 1 has no vision at all


def _global_problem():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 8, 5, generator=g, dtype=torch.float64)  # touch / vision / text inputs of 2 ranks x 4
    weight = torch.randn(5, 5, generator=g, dtype=torch.float64)
    return x, weight


def _gather_worker(rank, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x, w0 = _global_problem()
        w = w0.clone().requires_grad_(True)
        vf, tf = RANK_FLAGS[rank]
        touch, vision, text = (x[i, 4 * rank: 4 * rank + 4] @ w for i in range(3))
        out = run_align(touch, vision, text, vf, tf, gather=True)
        out["loss"].backward()
        loss, grad = out["loss"].detach().clone(), w.grad.clone()
        dist.all_reduce(loss), dist.all_reduce(grad)  # what DDP's averaging does
        if rank == 0:
            queue.put((loss.item() / 2, (grad / 2).tolist()))  # plain data: the sender exits right after
    finally:
        shutdown()  # destroys the loss's side group too; a group left alive aborts the process at exit


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_negatives_equal_the_single_process_batch():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_gather_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0], "a gloo worker failed (its traceback is above)"
    loss, grad = queue.get(timeout=5)
    x, w0 = _global_problem()
    w = w0.clone().requires_grad_(True)
    touch, vision, text = (x[i] @ w for i in range(3))
    ref = run_align(touch, vision, text, RANK_FLAGS[0][0] + RANK_FLAGS[1][0], RANK_FLAGS[0][1] + RANK_FLAGS[1][1])
    ref["loss"].backward()
    assert loss == pytest.approx(ref["loss"].item(), rel=1e-10)
    torch.testing.assert_close(torch.tensor(grad, dtype=torch.float64), w.grad, rtol=1e-9, atol=1e-12)
