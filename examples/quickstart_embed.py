# %% [markdown]
# # Embed a GelSight Mini frame and a DIGIT clip with AnyTouch
#
# Notebook-style (`# %%` cells: run in VS Code / Jupytext, or `python examples/quickstart_embed.py [CHECKPOINT]`).
#
# * Checkpoint: the first argument or `$ANYTOUCH_CKPT` -- the released AnyTouch file (`log/checkpoint.pth`, an
#   original stage-2 checkpoint) or any of ours. `$ANYTOUCH_CLIP_CONFIG` may name the CLIP `config.json` folder
#   (`CLIP-ViT-L-14-DataComp.XL-s13B-b90K`); without it the sizes are read from the weights. With no checkpoint
#   the example uses a randomly initialised tiny encoder, so it runs anywhere (the similarity is then meaningless).
# * Frames: `$ANYTOUCH_MINI_FRAME` (an image from a GelSight Mini) and `$ANYTOUCH_DIGIT_CLIP` (a folder with at least
#   3 consecutive DIGIT frames); by default both are rendered by the built-in synthetic data (the same material).

# %%
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import anytouch

# %% Load the touch encoder
ckpt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ANYTOUCH_CKPT")
if ckpt:
    encoder = anytouch.load_encoder(ckpt, config=os.environ.get("ANYTOUCH_CLIP_CONFIG"))
else:
    print("no checkpoint given (argument or $ANYTOUCH_CKPT): using a random tiny encoder, similarities are meaningless")
    from anytouch.models import TouchEncoder

    torch.manual_seed(0)
    encoder = TouchEncoder(anytouch.get_arch("tiny")).eval()
size = encoder.image_size  # 224 for the released model


# %% Get frames: your files, or synthetic stand-ins (RGB uint8 arrays of any size)
def synthetic_frames(sensor: str, n: int, seed: int):
    from anytouch.data.synthetic_render import LOOKS, TAG_MATERIALS, random_scene, render_touch

    rng = np.random.default_rng(seed)
    scene = random_scene(rng, TAG_MATERIALS[3])  # one wooden object pressed into the gel
    frames = render_touch(scene, LOOKS[anytouch.sensor_id(sensor)], 128, rng, np.linspace(0.4, 1.0, n))
    return [f.transpose(1, 2, 0) for f in frames]  # (3, H, W) -> (H, W, 3)


mini_path, digit_dir = os.environ.get("ANYTOUCH_MINI_FRAME"), os.environ.get("ANYTOUCH_DIGIT_CLIP")
mini_frame = Image.open(mini_path) if mini_path else synthetic_frames("gelsight_mini", 1, seed=0)[0]
digit_clip = ([Image.open(p) for p in sorted(Path(digit_dir).iterdir())[:3]] if digit_dir
              else synthetic_frames("digit", 3, seed=1))

# %% Embed one GelSight Mini frame: an image is a clip of 3 identical frames inside the encoder
x = anytouch.preprocess_touch(mini_frame, size=size).unsqueeze(0)  # (1, 3, S, S), ImageNet-normalised
with torch.no_grad():
    f_mini = encoder(x, sensor="gelsight_mini")  # (1, 768) for the released model
print("GelSight Mini feature:", tuple(f_mini.shape))

# %% Embed a 3-frame DIGIT clip (oldest frame first)
clip = anytouch.preprocess_touch(digit_clip, size=size).unsqueeze(0)  # (1, 3, 3, S, S)
with torch.no_grad():
    f_digit = encoder(clip, sensor="digit")
print("DIGIT clip feature:", tuple(f_digit.shape))

# %% Compare them in the shared space (cosine similarity of the unnormalised features)
similarity = torch.nn.functional.cosine_similarity(f_mini, f_digit).item()
print(f"cosine similarity (GelSight Mini frame vs DIGIT clip): {similarity:.3f}")

# %% An unknown sensor: the universal token needs no training (or see `anytouch adapt` for a slot of its own)
with torch.no_grad():
    f_any = encoder(x, sensor="universal")
print(f"same frame, universal token vs GelSight Mini token: "
      f"{torch.nn.functional.cosine_similarity(f_any, f_mini).item():.3f}")
