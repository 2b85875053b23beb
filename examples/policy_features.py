# %% [markdown]
# # AnyTouch as the tactile encoder of a robot policy
#
# Notebook-style (`# %%` cells), or `python examples/policy_features.py [CHECKPOINT]`. A policy sees the last few
# raw frames of a gel sensor each control step; `anytouch.policy.TactileEncoder` takes those uint8 frames where they
# already are (the GPU, when there is one), keeps the encoder's window (AnyTouch 1: the newest 3 frames; AnyTouch 2:
# its 4 or 2 frames at its frame stride), preprocesses it on that device with the encoder's own statistics (and a
# no-contact `background=` frame, which AnyTouch 2 is trained with), runs the encoder (bf16 on a GPU) and hands the
# policy a feature. Frozen here: only the policy head trains
# (`tune="lora"` or `tune="last", blocks=2` train adapters or the last blocks too).
#
# * Checkpoint: the first argument or `$ANYTOUCH_CKPT` (the released `log/checkpoint.pth`, ours, a hub folder or
#   `hf-hub:org/name`); without one a random tiny encoder stands in, so the example runs anywhere.
# * Frames here are random stand-ins: replace them with your sensor's ring buffer, shaped (batch, T, H, W, 3),
#   T >= `touch.span`.
#   `examples/policy_lerobot.py` trains on a recorded dataset and shows the LeRobot observation step.

# %%
import os
import sys

import torch
import torch.nn as nn

import anytouch
from anytouch.policy import TactileEncoder

ckpt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ANYTOUCH_CKPT")
if ckpt:
    encoder = anytouch.load_encoder(ckpt)
else:
    print("no checkpoint given (argument or $ANYTOUCH_CKPT): a random tiny encoder stands in")
    from anytouch.models import TouchEncoder

    torch.manual_seed(0)
    encoder = TouchEncoder(anytouch.get_arch("tiny"))
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
touch = TactileEncoder(encoder, sensor="gelsight_mini").to(device)

# %% A policy: touch feature + proprioception -> action
policy = nn.ModuleDict({"touch": touch, "head": nn.Sequential(nn.Linear(touch.dim + 7, 256), nn.GELU(),
                                                              nn.Linear(256, 7))}).to(device)
optimizer = torch.optim.AdamW(policy["head"].parameters(), lr=1e-3)
policy.train()
for step in range(3):
    frames = torch.randint(0, 256, (8, touch.span, 240, 320, 3), dtype=torch.uint8, device=device)
    proprio, action = torch.randn(8, 7, device=device), torch.randn(8, 7, device=device)
    loss = nn.functional.mse_loss(policy["head"](torch.cat([touch(frames), proprio], -1)), action)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f}")
assert not touch.encoder.training and all(p.grad is None for p in touch.encoder.parameters())
print("encoder untouched: still in eval mode, no gradients")
