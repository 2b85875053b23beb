"""Physically plausible synthetic twins of the benchmark tasks (force, slip, pose, textile), rendered with
:mod:`anytouch.data.synthetic_render`. Not part of any release: a stand-in so the benchmark runs without a download.

Units: the synthetic pad is ``PAD_METRES`` wide; pad coordinates run from -1 to 1 across it, so one pad unit is
``PAD_METRES / 2`` metres. Frames are uint8 (H, W, 3).

Press (force and slip): an indenter (sphere, sharp or flat) is pressed to a depth and then dragged along the pad
during the frame window (the oldest frame of the window is the start of the drag):

* normal force ``Fz = K_NORMAL * mean(h)`` newtons, with ``h`` the rendered indentation height map of the contact
  (pad average: depth times contact area, so deeper and wider contacts press harder);
* the gel holds the contact elastically up to ``e_max = MU * Fz / K_SHEAR`` pad units of drag (the friction
  cone), so the shear force is ``(Fx, Fy) = K_SHEAR * min(s, e_max) * (cos a, sin a)`` for a drag ``s`` in
  direction ``a``; the printed markers (GelSight-like looks) are dragged by ``min(s, e_max)``;
* slip = 1 when the drag went past the elastic limit (``s > e_max``): the indenter then slides on (0.08 - 0.25 pad
  units past the limit over the window), so the contact patch moves further between the window's first and last
  frame than the friction cone allows for the indentation seen; a stuck contact stays within 0.8 ``e_max``.

Pose: a textured pattern pressed into the pad is moved by an SE(2) displacement (dx, dy, dtheta) between two
frames; the target is that displacement in metres and radians (x along image columns, y along rows, theta from x
towards y).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Tuple

import numpy as np

from .bench_base import window
from .synthetic_render import LOOKS, SHAPES, TAG_MATERIALS, Look, height_map, random_scene, render_touch, shade

__all__ = ["background", "PAD_METRES", "K_NORMAL", "K_SHEAR", "MU", "INDENTERS", "sensor_look", "press_window",
           "pattern_scene", "render_posed", "pose_pair", "squeeze_window"]

PAD_METRES = 0.02
K_NORMAL = 18.0  # N per unit of pad-averaged indentation
K_SHEAR = 20.0  # N per pad unit of elastic drag
MU = 0.5  # friction coefficient of the indenter on the gel
INDENTERS = {"sphere": ("disk", 0.45), "sharp": ("disk", 0.25), "flat": ("square", 0.6)}
_SMOOTH = TAG_MATERIALS[0]  # a smooth, hard material: the indenters
_TEXTURED = tuple(m for m in TAG_MATERIALS if m.texture in ("ridges", "bumps", "weave") and not m.soft)
_LOOK_OF = {"gelsight": 0, "digit": 1, "gelslim": 2, "gelsight_mini": 3, "duragel": 4}


def sensor_look(sensor: str) -> Look:
    """The rendering look of a sensor name (``gelsight``, ``digit``, ``gelsight_mini`` ...)."""
    if sensor not in _LOOK_OF:
        raise ValueError(f"synthetic sensor {sensor!r}; expected one of {tuple(_LOOK_OF)}")
    return LOOKS[_LOOK_OF[sensor]]


def _to_hwc(chw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(chw, -3, -1))


def background(look: Look, size: int, rng: np.random.Generator) -> np.ndarray:
    """The no-contact frame of ``look``: uint8 (size, size, 3)."""
    return _to_hwc(shade(np.zeros((size, size), np.float32), look, (0.0, 0.0), rng))


def press_window(rng: np.random.Generator, slip: int, frames: int, stride: int, size: int, look: Look,
                 indenter: str = "") -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One press-and-drag window: (frames uint8 (T, H, W, 3), background (H, W, 3), forces (T, 3) N, slip (T,)).

    ``slip`` (0 / 1) decides whether the drag at the last frame is past the elastic limit; ``indenter`` (default:
    drawn) is a key of :data:`INDENTERS`. The drag grows linearly over the window's ``(frames - 1) * stride``
    frames, from 0 at the oldest frame.
    """
    name = indenter or sorted(INDENTERS)[int(rng.integers(len(INDENTERS)))]
    shape, half = INDENTERS[name]
    scene = replace(random_scene(rng, _SMOOTH, shape=shape), size=half * float(rng.uniform(0.85, 1.15)),
                    centre=tuple(float(c) for c in rng.uniform(-0.08, 0.08, 2)), slide=(0.0, 0.0))
    depth = float(rng.uniform(0.35, 1.0))
    fz = K_NORMAL * float(height_map(scene, size, depth, 0.0, rng).mean())
    e_max = MU * fz / K_SHEAR
    # stuck: the drag stays inside the elastic limit; slipping: past it, the indenter slides on over the gel
    drag = e_max + float(rng.uniform(0.08, 0.25)) if slip else e_max * float(rng.uniform(0.0, 0.8))
    angle = float(rng.uniform(0, 2 * math.pi))
    direction = np.array([math.cos(angle), math.sin(angle)])
    span = (frames - 1) * stride
    out, forces, slips = [], [], []
    for t in window(span, frames, stride):
        s = drag * t / span if span else drag
        centre = tuple(float(c) for c in np.asarray(scene.centre) + s * direction)
        stretch = min(s, e_max) * direction
        h = height_map(replace(scene, centre=centre), size, depth, 0.0, rng)
        out.append(_to_hwc(shade(h, look, (float(stretch[0] * size / 2), float(stretch[1] * size / 2)), rng)))
        forces.append([K_SHEAR * stretch[0], K_SHEAR * stretch[1], fz])
        slips.append(int(s > e_max))
    return np.stack(out), background(look, size, rng), np.asarray(forces, np.float32), np.asarray(slips, np.int64)


def pattern_scene(rng: np.random.Generator):
    """A textured pattern (ridges, bumps or weave on a hard material) for the pose task, at the pad centre."""
    material = _TEXTURED[int(rng.integers(len(_TEXTURED)))]
    return replace(random_scene(rng, material, shape=SHAPES[int(rng.integers(4))]),
                   size=float(rng.uniform(0.6, 0.75)), slide=(0.0, 0.0), centre=(0.0, 0.0))


def render_posed(scene, pose, depth: float, size: int, look: Look, rng: np.random.Generator) -> np.ndarray:
    """``scene`` moved by ``pose`` = (x, y, theta) in pad units and radians (outline and texture rotate together
    about the pattern centre) -> uint8 (H, W, 3)."""
    x, y, theta = (float(v) for v in pose)
    m = scene.material
    moved = replace(scene, centre=(scene.centre[0] + x, scene.centre[1] + y), shape_angle=scene.shape_angle + theta,
                    material=replace(m, angle=m.angle + theta))
    return _to_hwc(render_touch(moved, look, size, rng, [depth])[0])


def pose_pair(rng: np.random.Generator, size: int, look: Look) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two frames of a textured pattern moved by an SE(2) displacement: (frames (2, H, W, 3), background,
    target (dx m, dy m, dtheta rad))."""
    scene = pattern_scene(rng)
    start = np.array([*rng.uniform(-0.1, 0.1, 2), rng.uniform(0, math.pi)])
    delta = np.array([*rng.uniform(-0.12, 0.12, 2), rng.uniform(-0.3, 0.3)])
    depth = float(rng.uniform(0.8, 1.0))
    frames = np.stack([render_posed(scene, p, depth, size, look, rng) for p in (start, start + delta)])
    target = np.array([delta[0] * PAD_METRES / 2, delta[1] * PAD_METRES / 2, delta[2]], np.float32)
    return frames, background(look, size, rng), target


def squeeze_window(rng: np.random.Generator, label: int, frames: int, stride: int, size: int,
                   look: Look) -> Tuple[np.ndarray, np.ndarray]:
    """The last ``frames`` frames (at ``stride``) of a squeeze of textile class ``label`` (0..19: the texture,
    frequency and softness of ``TAG_MATERIALS[label]``): (frames (T, H, W, 3), background)."""
    scene = replace(random_scene(rng, TAG_MATERIALS[label]), slide=(0.0, 0.0))
    n = (frames - 1) * stride + 1
    depths = np.linspace(0.3, float(rng.uniform(0.75, 1.0)), n)[::stride]
    return _to_hwc(render_touch(scene, look, size, rng, list(depths))), background(look, size, rng)
