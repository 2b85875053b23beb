# %% [markdown]
# # A tactile policy trained on a recorded dataset, and the same encoder in a LeRobot pipeline
#
# `python examples/policy_lerobot.py [DATASET.npz] [--checkpoint CKPT] [--steps N] [--tune frozen|lora|last]`
#
# The dataset is a LeRobot-style table of samples in one `.npz`: `observation.images.tactile` (N, T, H, W, 3)
# uint8 frame histories (oldest first, as the sensor gave them), `observation.state` (N, S) and `action` (N, A).
# Without a dataset a synthetic one is recorded first (a pressed blob whose position sets the action); without a
# checkpoint (`--checkpoint`, `$ANYTOUCH_CKPT`; a path, hub folder or `hf-hub:org/name`) a random tiny encoder
# stands in, so the example runs anywhere. When `lerobot` is installed the last cell runs the frozen encoder as a
# LeRobot observation processor step.

# %%
import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import anytouch
from anytouch.integrations.lerobot import TactileFeatureStep
from anytouch.policy import TactileEncoder

TACTILE, STATE, ACTION = "observation.images.tactile", "observation.state", "action"


# %% A recorded dataset (synthetic stand-in)
def record_synthetic(path, n=64, frames=4, height=48, width=64, seed=0):
    """Gel frames with a pressed blob drifting over the history; the action is the blob's last position plus a
    correction read from the proprioceptive state."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    video = np.full((n, frames, height, width, 3), (90, 110, 140), np.float32)
    pos = rng.uniform(0.2, 0.8, (n, 2))
    for t in range(frames):
        c = pos + 0.02 * (t - frames + 1)  # (N, 2) blob centre at step t
        blob = np.exp(-(((xx / width)[None] - c[:, :1, None]) ** 2 + ((yy / height)[None] - c[:, 1:, None]) ** 2) / 0.01)
        video[:, t] += 120 * blob[..., None]
    state = rng.normal(size=(n, 4)).astype(np.float32)
    np.savez(path, **{TACTILE: np.clip(video, 0, 255).astype(np.uint8), STATE: state,
                      ACTION: (6 * pos - 3 + state[:, :2]).astype(np.float32)})
    return Path(path)


def load_dataset(path, device):
    data = np.load(path)
    missing = {TACTILE, STATE, ACTION} - set(data.files)
    if missing:
        raise KeyError(f"{path}: missing {sorted(missing)}; expected {TACTILE}, {STATE}, {ACTION}")
    return {k: torch.from_numpy(data[k]).to(device) for k in (TACTILE, STATE, ACTION)}


# %% The policy: tactile features + proprioception -> action
class Policy(nn.Module):
    def __init__(self, touch: TactileEncoder, state_dim: int, action_dim: int):
        super().__init__()
        self.touch = touch
        self.norm = nn.LayerNorm(touch.dim)  # encoder features are unnormalised; the head wants a steady scale
        self.head = nn.Sequential(nn.Linear(touch.dim + state_dim, 128), nn.GELU(), nn.Linear(128, action_dim))

    def forward(self, batch):
        return self.head(torch.cat([self.norm(self.touch(batch[TACTILE])), batch[STATE]], dim=-1))


def make_encoder(checkpoint=None):
    if checkpoint:
        return anytouch.load_encoder(checkpoint)
    from anytouch.models import TouchEncoder

    torch.manual_seed(0)
    return TouchEncoder(anytouch.get_arch("tiny"))


def train(dataset, checkpoint=None, steps=30, tune="frozen", batch_size=16, lr=1e-2, seed=0):
    """Behaviour cloning for ``steps`` steps; returns (policy, per-step losses)."""
    device = dataset[ACTION].device
    touch = TactileEncoder(make_encoder(checkpoint), sensor="universal", tune=tune)
    policy = Policy(touch, dataset[STATE].shape[1], dataset[ACTION].shape[1]).to(device)
    params = [*policy.norm.parameters(), *policy.head.parameters(), *touch.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    policy.train()
    for _ in range(steps):
        idx = torch.randint(0, len(dataset[ACTION]), (batch_size,), generator=g).to(device)
        batch = {k: v[idx] for k, v in dataset.items()}
        loss = nn.functional.mse_loss(policy(batch), batch[ACTION])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return policy, losses


# %% Run
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", nargs="?", help="recorded .npz (default: record a synthetic one)")
    ap.add_argument("--checkpoint", default=os.environ.get("ANYTOUCH_CKPT"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--tune", choices=("frozen", "lora", "last"), default="frozen")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = args.dataset or record_synthetic("tactile_dataset.npz")
    dataset = load_dataset(path, device)
    policy, losses = train(dataset, args.checkpoint, steps=args.steps, tune=args.tune)
    print(f"{args.tune} encoder, {args.steps} steps: loss {losses[0]:.4f} -> {min(losses[-5:]):.4f}")

    # the same encoder as a LeRobot observation step: frames in, features under observation.environment_state
    step = TactileFeatureStep(encoder=policy.touch, input_key=TACTILE)
    obs = step.observation({TACTILE: dataset[TACTILE][:2], STATE: dataset[STATE][:2]})
    print(f"observation step: {sorted(obs)}, features {tuple(obs['observation.environment_state'].shape)}")
    try:
        from anytouch.integrations.lerobot import make_lerobot_step
        from lerobot.processor import DataProcessorPipeline
    except ImportError:
        print("lerobot is not installed: pip install 'anytouch[lerobot]' to run the step inside a LeRobot pipeline")
        return
    pipeline = DataProcessorPipeline([make_lerobot_step(encoder=policy.touch, input_key=TACTILE)])
    print("LeRobot pipeline:", pipeline)


if __name__ == "__main__":
    main()
