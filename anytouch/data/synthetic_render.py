"""Procedural visuo-tactile rendering behind the built-in synthetic data (``data.root == "synthetic"``).

Not part of AnyTouch (ICLR 2025): a stand-in for the sensor images of docs/original/data.md so that the loaders, both
pre-training stages (docs/original/architecture.md#mae-losses, docs/original/recipe.md#stage-2-alignment-and-matching)
and the probes (docs/original/probes.md#probe-datasets, #protocol) run without any download. A touch frame is an object
of some shape and surface texture pressed into a gel (a height map), shaded the way a visuo-tactile sensor shows surface
slope, through one sensor "look" per sensor id of docs/original/architecture.md#sensor-tokens (background colour,
illumination gradient, coloured side lights, gel tint, printed markers on the GelSight-like sensors). Clips press the
object in deeper and slide it frame by frame. A paired pseudo-camera image shows the object's colour and texture, and a
caption names its attributes. Everything is numpy at a small size (``SyntheticConfig.render_size``), uint8 (3,R,R).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

RGB = Tuple[float, float, float]


@dataclass(frozen=True)
class Look:
    """How one sensor shows contact: all colours are RGB in [0, 1]."""

    name: str
    base: RGB  # gel background
    ramp: RGB  # added along the illumination gradient (-1 .. 1 across the pad)
    ramp_angle: float  # direction of that gradient (radians)
    lights: Tuple[Tuple[float, RGB], ...]  # (direction, colour) of the side lights shading the surface slope
    tint: RGB  # added in proportion to the indentation depth
    markers: float  # printed-marker grid spacing in pixels at 64 px (0 = no markers)


# One look per sensor id of docs/original/architecture.md#sensor-tokens; -1 is the look of the simulated ObjectFolder
# 1.0/2.0 renderings.
LOOKS = {
    0: Look("gelsight", (0.42, 0.40, 0.38), (0.10, 0.06, 0.00), 0.3,
            ((0.0, (0.55, 0.10, 0.05)), (2.1, (0.05, 0.50, 0.10)), (4.2, (0.05, 0.10, 0.55))), (0.04, 0.04, 0.04), 8),
    1: Look("digit", (0.55, 0.56, 0.64), (0.22, 0.00, -0.18), 1.57,
            ((0.0, (0.60, 0.05, 0.05)), (2.1, (0.05, 0.55, 0.05)), (4.2, (0.05, 0.05, 0.60))), (0.00, 0.04, 0.08), 0),
    2: Look("gelslim", (0.58, 0.58, 0.56), (0.05, 0.05, 0.05), 2.4,
            ((0.8, (0.35, 0.35, 0.35)), (3.9, (0.20, 0.20, 0.25))), (-0.06, -0.06, -0.04), 7),
    3: Look("gelsight_mini", (0.48, 0.38, 0.55), (0.08, 0.00, 0.12), 4.0,
            ((0.5, (0.45, 0.15, 0.30)), (2.6, (0.10, 0.45, 0.30)), (4.7, (0.20, 0.15, 0.55))), (0.03, 0.02, 0.05), 9),
    4: Look("duragel", (0.22, 0.33, 0.28), (0.04, 0.10, 0.04), 5.2,
            ((1.2, (0.30, 0.45, 0.20)), (4.3, (0.10, 0.25, 0.35))), (0.10, 0.12, 0.06), 0),
    -1: Look("simulated", (0.50, 0.50, 0.50), (0.00, 0.00, 0.00), 0.0,
             ((0.0, (0.45, 0.45, 0.45)), (1.57, (0.30, 0.30, 0.30))), (0.0, 0.0, 0.0), 0),
}

TEXTURES = ("smooth", "ridges", "bumps", "grain", "weave")
SHAPES = ("disk", "ellipse", "square", "bar", "plane")
LIGHT_ELEVATION = 0.6  # radians above the gel plane


@dataclass(frozen=True)
class Material:
    """A surface: texture kind/frequency/orientation (what touch sees), colour (what the camera sees), attributes."""

    name: str
    texture: str
    freq: float  # texture cycles across the pad
    angle: float  # texture orientation (radians)
    rough: bool
    soft: bool
    colour: RGB


def _materials(names: Sequence[str], rough: Sequence[int], soft: Sequence[int], colours) -> Tuple[Material, ...]:
    return tuple(
        Material(n, TEXTURES[i % 5], (3.0, 5.0, 8.0, 12.0)[(i // 5) % 4], (i * 0.7) % math.pi,
                 bool(rough[i]), i in soft, colours[i])
        for i, n in enumerate(names)
    )


# 20 material classes of the TAG-like probe (docs/original/probes.md#probe-datasets). Ids {7, 8, 9, 11, 13} are the soft
# hardness rule (those ids -> 1) gives "soft" = 1. The names are ours (captions), not TAG's category list.
TAG_MATERIALS = _materials(
    ("concrete", "plastic", "glass", "wood", "metal", "brick", "tile", "leather", "foam", "rubber",
     "paper", "sponge", "stone", "cloth", "rock", "gravel", "ceramic", "bark", "marble", "cork"),
    rough=(0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0),
    soft=(7, 8, 9, 11, 13),
    colours=[(0.55, 0.55, 0.52), (0.20, 0.45, 0.80), (0.70, 0.85, 0.90), (0.55, 0.35, 0.18), (0.65, 0.66, 0.70),
             (0.60, 0.25, 0.18), (0.85, 0.85, 0.80), (0.35, 0.20, 0.12), (0.90, 0.80, 0.30), (0.15, 0.15, 0.15),
             (0.92, 0.92, 0.88), (0.95, 0.85, 0.35), (0.45, 0.45, 0.42), (0.30, 0.30, 0.60), (0.40, 0.36, 0.32),
             (0.50, 0.47, 0.42), (0.90, 0.88, 0.84), (0.35, 0.25, 0.15), (0.92, 0.92, 0.95), (0.70, 0.55, 0.35)],
)

# 7 object classes of the ObjectFolder probes (the material list of ObjectFolder's objects.csv).
OF_MATERIALS = _materials(
    ("wood", "iron", "ceramic", "polycarbonate", "steel", "glass", "plastic"),
    rough=(1, 1, 0, 0, 0, 0, 1), soft=(),
    colours=[(0.55, 0.35, 0.18), (0.40, 0.38, 0.36), (0.90, 0.88, 0.84), (0.75, 0.80, 0.85), (0.65, 0.66, 0.70),
             (0.70, 0.85, 0.90), (0.20, 0.45, 0.80)],
)


@dataclass(frozen=True)
class Scene:
    """One object touching the pad: everything a frame, a clip or a camera image is rendered from."""

    material: Material
    shape: str
    size: float  # half extent in pad units ([-1, 1] across the pad)
    shape_angle: float
    centre: Tuple[float, float]
    slide: Tuple[float, float]  # centre shift per frame (pad units)
    phase: float  # texture phase
    table: RGB  # background colour of the camera image


def random_scene(rng: np.random.Generator, material: Material, shape: Optional[str] = None) -> Scene:
    """Draw a scene for ``material`` (shape, size, position, sliding direction, texture phase) from ``rng``."""
    return Scene(
        material=material,
        shape=shape if shape is not None else SHAPES[int(rng.integers(len(SHAPES)))],
        size=float(rng.uniform(0.45, 0.75)),
        shape_angle=float(rng.uniform(0, math.pi)),
        centre=(float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.1, 0.1))),
        slide=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
        phase=float(rng.uniform(-0.4, 0.4)),
        table=tuple(float(c) for c in rng.uniform(0.15, 0.45, 3)),
    )


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(c, c)  # u: columns (x), v: rows (y); each (size, size)


def _rotate(u, v, angle):
    ca, sa = math.cos(angle), math.sin(angle)
    return u * ca + v * sa, -u * sa + v * ca


def _signed_distance(scene: Scene, u, v) -> np.ndarray:
    """Signed distance to the object's outline in pad units, negative inside; (R, R)."""
    a, b = _rotate(u - scene.centre[0], v - scene.centre[1], scene.shape_angle)
    r = scene.size
    if scene.shape == "disk":
        return np.sqrt(a * a + b * b) - r
    if scene.shape == "ellipse":
        return (np.sqrt((a / 1.0) ** 2 + (b / 0.55) ** 2) - 1.0) * r
    if scene.shape == "square":
        return np.maximum(np.abs(a), np.abs(b)) - r * 0.85
    if scene.shape == "bar":
        return np.abs(b) - r * 0.45
    if scene.shape == "plane":
        return b - (r - 0.6)
    raise ValueError(f"unknown shape {scene.shape!r}; expected one of {SHAPES}")


def _texture(m: Material, u, v, phase: float, rng: np.random.Generator) -> np.ndarray:
    """Surface texture in [-1, 1], (R, R)."""
    a, b = _rotate(u, v, m.angle)
    k = math.pi * m.freq
    if m.texture == "smooth":
        return np.zeros_like(u)
    if m.texture == "ridges":
        return np.cos(k * a + phase)
    if m.texture == "bumps":
        return np.cos(k * a + phase) * np.cos(k * b + phase)
    if m.texture == "weave":
        return np.tanh(3 * np.cos(k * a + phase)) * np.tanh(3 * np.sin(k * b)) * 0.7 + 0.3 * np.cos(k * b)
    if m.texture == "grain":
        noise = rng.standard_normal(u.shape).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=max(0.5, u.shape[0] / (3.0 * m.freq)))
        return np.clip(noise / (noise.std() + 1e-6), -2, 2) / 2
    raise ValueError(f"unknown texture {m.texture!r}; expected one of {TEXTURES}")


def height_map(scene: Scene, size: int, depth: float, frame: float, rng: np.random.Generator) -> np.ndarray:
    """Indentation of the gel, (size, size) float32 in [0, ~1.6]; ``frame`` shifts the object along ``scene.slide``.

    Deeper presses widen the contact; soft materials make a wider, blurrier, less textured contact.
    """
    u, v = _grid(size)
    moved = replace(scene, centre=(scene.centre[0] + scene.slide[0] * frame, scene.centre[1] + scene.slide[1] * frame))
    soft = scene.material.soft
    edge = 0.10 if soft else 0.035
    inside = 1.0 / (1.0 + np.exp(np.clip((_signed_distance(moved, u, v) + (1.0 - depth) * 0.25) / edge, -30, 30)))
    amp = (0.55 if scene.material.rough else 0.12) * (0.5 if soft else 1.0)
    tex = _texture(scene.material, u - moved.centre[0], v - moved.centre[1], scene.phase, rng)
    h = depth * inside * (1.0 + amp * tex) * (0.7 if soft else 1.0)
    if scene.material.rough:  # micro-roughness: fine grain on top of the texture (steep, so it dims the contact)
        h = h + depth * inside * 0.08 * rng.standard_normal(h.shape).astype(np.float32)
    if soft:
        h = cv2.GaussianBlur(h.astype(np.float32), (0, 0), sigmaX=size / 40.0)
    return h.astype(np.float32)


def shade(h: np.ndarray, look: Look, shear: Tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Height map (R, R) -> sensor image (3, R, R) uint8 in ``look``; ``shear`` (pixels) drags the markers."""
    size = h.shape[0]
    u, v = _grid(size)
    gy, gx = np.gradient(h * (size / 14.0))
    img = np.empty((3, size, size), np.float32)
    ramp = u * math.cos(look.ramp_angle) + v * math.sin(look.ramp_angle)
    # Lambertian response of each side light (elevation LIGHT_ELEVATION) relative to a flat gel: first order it is
    # the slope along the light, and steep or rough surfaces also lose brightness overall (the normal tilts away).
    norm = np.sqrt(1.0 + gx * gx + gy * gy)
    se, ce = math.sin(LIGHT_ELEVATION), math.cos(LIGHT_ELEVATION)
    resp = [(se - np.maximum((-gx * math.cos(a) * ce - gy * math.sin(a) * ce + se) / norm, 0.0)) / ce
            for a, _ in look.lights]
    for c in range(3):
        slope = sum(col[c] * r for (_, col), r in zip(look.lights, resp))
        img[c] = look.base[c] + look.ramp[c] * ramp + slope + look.tint[c] * h
    if look.markers:
        s = look.markers * size / 64.0
        px = (u + 1) * size / 2 - shear[0] * np.clip(h, 0, 1) + gx
        py = (v + 1) * size / 2 - shear[1] * np.clip(h, 0, 1) + gy
        dx, dy = (px % s) - s / 2, (py % s) - s / 2
        img *= 1.0 - 0.75 * np.exp(-(dx * dx + dy * dy) / (2 * (0.12 * s) ** 2))
    img += rng.normal(0.0, 0.012, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_touch(scene: Scene, look: Look, size: int, rng: np.random.Generator, depths: Sequence[float],
                 start: float = 0.0, stride: float = 1.0) -> np.ndarray:
    """Frames of ``scene`` pressed to each depth in ``depths`` (one frame each), sliding ``stride`` steps per frame.

    Returns uint8 (T, 3, size, size), oldest frame first.
    """
    frames = []
    for t, d in enumerate(depths):
        frame = start + t * stride
        h = height_map(scene, size, float(d), frame, rng)
        shear = (scene.slide[0] * frame * size * 2, scene.slide[1] * frame * size * 2)
        frames.append(shade(h, look, shear, rng))
    return np.stack(frames)


def render_grasp(rng: np.random.Generator, success: bool, size: int, look: Look = LOOKS[0]) -> np.ndarray:
    """A Feel-like grasp: the two fingers' frames A, B (uint8 (2,3,size,size)) of one object. A successful grasp
    presses both firmly; a failed one leaves one finger (A or B at random) in weak, off-centre contact."""
    scene = random_scene(rng, TAG_MATERIALS[int(rng.integers(len(TAG_MATERIALS)))])
    depths = [float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.8, 1.0))]
    weak = int(rng.integers(2))
    frames = []
    for finger in range(2):
        s, d = scene, depths[finger]
        if not success and finger == weak:
            s = replace(scene, centre=(scene.centre[0] + 0.35, scene.centre[1] - 0.2))
            d = float(rng.uniform(0.05, 0.35))
        frames.append(render_touch(s, look, size, rng, [d])[0])
    return np.stack(frames)


def render_vision(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pseudo camera view of the object (its colour and a coarse version of its texture): uint8 (3, size, size)."""
    u, v = _grid(size)
    big = replace(scene, size=scene.size * 0.8, centre=(scene.centre[0] * 0.5, scene.centre[1] * 0.5))
    inside = 1.0 / (1.0 + np.exp(np.clip(_signed_distance(big, u, v) / 0.03, -30, 30)))
    coarse = replace(scene.material, freq=scene.material.freq / 2)
    tex = _texture(coarse, u, v, scene.phase, rng)
    light = 0.85 + 0.15 * (-u - v) / 2
    img = np.empty((3, size, size), np.float32)
    for c in range(3):
        obj = scene.material.colour[c] * (1.0 + 0.25 * tex) * light
        img[c] = inside * obj + (1.0 - inside) * scene.table[c] * (0.9 + 0.1 * v)
    img += rng.normal(0.0, 0.015, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


_TEMPLATES = (
    "a {hard}, {rough} {name} surface",
    "this {name} feels {rough} and {hard}",
    "the touch of {hard} {name} with a {rough} texture",
    "a {rough}, {hard} {name} object",
)


def caption(material: Material, variant: int) -> str:
    """Attribute caption of ``material`` ("a hard, rough wood surface" ...); ``variant`` picks the template."""
    return _TEMPLATES[variant % len(_TEMPLATES)].format(
        hard="soft" if material.soft else "hard", rough="rough" if material.rough else "smooth", name=material.name)
