# %% [markdown]
# # AnyTouch as the frozen tactile encoder of a robot policy
#
# Notebook-style (`# %%` cells), or `python examples/policy_features.py [CHECKPOINT]`. A policy sees the last few
# raw frames of a gel sensor each control step; this wraps the released encoder as an `nn.Module` that takes those
# uint8 frames where they already are (the GPU, when there is one), preprocesses the whole batch in one call, runs
# the frozen encoder in bf16 on a GPU, and hands the policy a feature. Only the policy head trains.
#
# * Checkpoint: the first argument or `$ANYTOUCH_CKPT` (the released `log/checkpoint.pth`, or ours); without one a
#   random tiny encoder stands in, so the example runs anywhere.
# * Frames here are random stand-ins: replace `fake_observations` with your sensor's ring buffer, shaped
#   (batch, 3, H, W, 3): the last 3 frames, oldest first, as the camera gives them.

# %%
import os
import sys

import torch
import torch.nn as nn

import anytouch


class TactileFeatures(nn.Module):
    """Frozen AnyTouch touch encoder: raw (B,T,H,W,3) uint8 clips (T >= 3, or (B,H,W,3) images) -> (B, D)."""

    def __init__(self, encoder: nn.Module, sensor: str = "gelsight_mini", pooling: str = "cls"):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.sensor, self.pooling = sensor, pooling
        self.dim = encoder.proj.out_features

    def train(self, mode: bool = True):  # policy.train() must not switch the frozen encoder out of eval mode
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = anytouch.preprocess_touch_batch(frames, size=self.encoder.image_size)
        on_gpu = x.device.type == "cuda"
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=on_gpu):
            return self.encoder(x, self.sensor, pooling=self.pooling).float()


# %% Load the encoder
ckpt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ANYTOUCH_CKPT")
if ckpt:
    encoder = anytouch.load_encoder(ckpt)
else:
    print("no checkpoint given (argument or $ANYTOUCH_CKPT): a random tiny encoder stands in")
    from anytouch.models import TouchEncoder

    torch.manual_seed(0)
    encoder = TouchEncoder(anytouch.get_arch("tiny"))
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
touch = TactileFeatures(encoder, sensor="gelsight_mini").to(device)


# %% A policy: touch feature + proprioception -> action
class Policy(nn.Module):
    def __init__(self, touch: TactileFeatures, proprio_dim: int = 7, action_dim: int = 7):
        super().__init__()
        self.touch = touch
        self.head = nn.Sequential(nn.Linear(touch.dim + proprio_dim, 256), nn.GELU(), nn.Linear(256, action_dim))

    def forward(self, frames, proprio):
        return self.head(torch.cat([self.touch(frames), proprio], dim=-1))


policy = Policy(touch).to(device)
optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
print(f"trainable parameters: {sum(p.numel() for p in policy.parameters() if p.requires_grad):,} "
      f"(the encoder's {sum(p.numel() for p in encoder.parameters()):,} stay frozen)")


# %% A few behaviour-cloning steps on stand-in data
def fake_observations(batch: int, height: int = 240, width: int = 320):
    frames = torch.randint(0, 256, (batch, 3, height, width, 3), dtype=torch.uint8, device=device)
    return frames, torch.randn(batch, 7, device=device), torch.randn(batch, 7, device=device)


policy.train()
for step in range(3):
    frames, proprio, action = fake_observations(8)
    loss = nn.functional.mse_loss(policy(frames, proprio), action)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f}")
assert not touch.encoder.training and all(p.grad is None for p in touch.encoder.parameters())
print("encoder untouched: still in eval mode, no gradients")
