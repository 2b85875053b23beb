"""The engine under real DDP (2 CPU processes, gloo): gradient accumulation with ``no_sync`` across micro-batches
that use different heads (image, then video) equals the single-process step on all the data; an idle head keeps
no gradient; a NaN on one rank is seen by all; RNG states are gathered from every rank.

This file is also the worker script: the test launches it with torchrun.
"""
import os
import subprocess
import sys

import torch
import torch.nn as nn


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk, self.head_a, self.head_b, self.head_c = nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(8, 3), nn.Linear(8, 1)

    def forward(self, x, head):
        return getattr(self, "head_" + head)(torch.tanh(self.trunk(x))).pow(2).mean()


def data(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g)  # micro-batch for head a, then head b


def worker():
    from anytouch.engine.dist import all_reduce_mean, gather_to_main, init_distributed, shutdown, wrap_ddp
    from anytouch.engine.optim import build_adamw
    from anytouch.engine.rng import rng_state, seed_all
    from anytouch.engine.step import Stepper

    env = init_distributed("cpu")
    model = TwoHeads()
    ddp = wrap_ddp(model, env, find_unused_parameters=True)
    stepper = Stepper(ddp, build_adamw(model, 0.1, 0.1), env.device)
    xa, xb = data(env.rank)
    for sync, x, head in ((False, xa, "a"), (True, xb, "b")):  # one window of 2 micro-batches
        with stepper.accumulate(sync):
            stepper.backward(ddp(x, head) / 2)
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    stepper.step(0.1)

    # reference: the same window on every rank's data in one process, gradients averaged over ranks
    ref = TwoHeads()
    ref_opt = build_adamw(ref, 0.1, 0.1)
    for r in range(env.world_size):
        ra, rb = data(r)
        ((ref(ra, "a") / 2 + ref(rb, "b") / 2) / env.world_size).backward()
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    ref_opt.step()

    for n, g in grads.items():
        if n.startswith("head_c"):
            assert g is None, f"{n}: an idle head must keep grad None, got {g}"
        else:
            torch.testing.assert_close(g, ref_grads[n], msg=lambda m: f"{n}: {m}")
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, msg=lambda m: f"{n}: {m}")

    nan_on_rank1 = torch.tensor([1.0, float("nan") if env.rank == 1 else 2.0])
    assert torch.isnan(all_reduce_mean(nan_on_rank1)[1]), "a NaN on one rank must reach every rank"
    seed_all(env.rank)
    states = gather_to_main(rng_state())
    if env.rank == 0:
        assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])
    del ddp, stepper  # DDP must be gone before the process group
    shutdown()
    print(f"rank {env.rank} ok", flush=True)


def test_accumulation_across_heads_under_ddp():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "rank 0 ok" in res.stdout and "rank 1 ok" in res.stdout


if __name__ == "__main__":
    worker()
