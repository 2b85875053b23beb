"""Built-in synthetic twins of every registered dataset (``build_dataset(name, synthetic=True)``, ``data.source:
synthetic``), same sample contract as real data.

Frames come from :mod:`anytouch.data.synthetic_render` at ``SyntheticConfig.render_size`` and then go through the
same transforms as real data (docs/original/data.md#transforms: touch-train / touch-test, OF1 jitter 0.1, OF2 none,
vision-train). The rendered content of sample ``i`` (object, pose, frames, caption, label) is a pure function of
``(seed, name, split, i)``; the augmentation draws come from torch's global RNG, exactly as for real data, so the
engine's per-(epoch, index) seeding makes augmented samples reproducible too, and every epoch still sees fresh
augmentations.

Each twin is read off the dataset's spec (:mod:`anytouch.data.spec`): a pre-training source's twin keeps its sensor
ids, stride and modality availability (docs/original/data.md#per-dataset-layout, #loader-contents): stage-2 samples
carry a pseudo camera image and a caption only where the real source has them (Cloth / YCB-Slide: neither; VisGel: no
text;
Octopi: no vision; a quarter of TAG rows withhold the text like its ``test_flag``). Probe labels
(docs/original/probes.md#probe-datasets) are learnable from the pixels: material <-> texture/shape, roughness <->
texture amplitude, hardness <-> contact softness, Feel grasp success <-> both fingers in firm contact (failure = one
weak, shifted contact), OF 7 classes.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .probe_sets import HARD_MATERIALS, OF1_JITTER, TOUCH_JITTER, carve_validation, default_train
from .registry import get
from .spec import DatasetSpec, ProbeTwin
from .synthetic_render import (LOOKS, OF_MATERIALS, TAG_MATERIALS, caption, random_scene, render_grasp, render_touch,
                               render_vision)
from .text import empty_text, encode_text
from .transforms import TouchTransform, VisionTransform

__all__ = ["build_synthetic", "SyntheticConfig", "CLIP_KINDS"]

CLIP_KINDS = ("image", "video", "cross_image", "cross_video")


@dataclass
class SyntheticConfig:
    """Built-in procedurally rendered tactile data (the ``data.synthetic`` section, used when ``data.source ==
    "synthetic"``)."""

    num_samples: int = 256  # per training set / per probe split
    probe_samples: int = 512  # per probe split (train / test) of the synthetic probe sets
    cross_samples: int = 32  # TacQuad anchors of the cross-sensor sets (one cross batch of the paper recipe)
    seed: int = 0
    render_size: int = 64  # frames are rendered at this size, then resized like real data


OBJECTS_PER_SOURCE = 16
_CACHE_SIZE = 2048  # rendered samples memoised per dataset object and process (~50 KB per 4-frame clip)


def _seed(*keys) -> np.random.SeedSequence:
    return np.random.SeedSequence([k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys])


@lru_cache(maxsize=256)
def _caption_tokens(text: str):
    return encode_text(text)


class _Synthetic(Dataset):
    """Shared plumbing: the scene generator of each sample (augmentation draws come from torch's global RNG)."""

    def __init__(self, key: str, split: str, cfg: SyntheticConfig, indices: Sequence[int]):
        self.key, self.split, self.cfg, self.indices = key, split, cfg, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def _rng(self, i: int) -> np.random.Generator:
        """The numpy generator of sample ``i``: a pure function of (seed, key, split, index)."""
        if not 0 <= i < len(self.indices):
            raise IndexError(f"index {i} out of range for a synthetic set of {len(self.indices)} samples")
        return np.random.default_rng(_seed(self.cfg.seed, self.key, self.split, self.indices[i]))


class SyntheticProbe(_Synthetic):
    """A probe set (docs/original/probes.md#probe-datasets): ``touch`` (3,H,W) (Feel: (2,3,H,W), A then B), ``sensor``,
    ``label``, ``source``."""

    def __init__(self, name: str, twin: ProbeTwin, split: str, image_size: int, cfg: SyntheticConfig, train: bool,
                 indices: Sequence[int], sensor: int):
        # the three TAG probes draw the same frames (one TAG twin), labelled three ways
        key = "tag" if twin.task.startswith("tag_") else name
        super().__init__(key, "train" if split == "val" else split, cfg, indices)
        self.name, self.task, self.sensor = name, twin.task, sensor
        jitter = OF1_JITTER if twin.task == "objectfolder" else TOUCH_JITTER
        self.transform = TouchTransform(image_size, train=train, jitter=jitter, antialias=True)

    def raw(self, i: int):
        """(rendered frames uint8 (3, R, R), Feel: (2, 3, R, R) A then B; label) of sample ``i``, no transform."""
        rng = self._rng(i)
        size = self.cfg.render_size
        if self.task == "feel":
            label = int(rng.integers(2))
            raw = render_grasp(rng, bool(label), size)  # (2, 3, R, R): A, B
        else:
            if self.task == "objectfolder":
                label = int(rng.integers(len(OF_MATERIALS)))
                material, look = OF_MATERIALS[label], LOOKS[-1]
            else:
                m = int(rng.integers(len(TAG_MATERIALS)))
                material, look = TAG_MATERIALS[m], LOOKS[0]
                label = {"tag_material": m, "tag_roughness": int(material.rough),
                         "tag_hardness": int(m in HARD_MATERIALS)}[self.task]
            raw = render_touch(random_scene(rng, material), look, size, rng, [float(rng.uniform(0.6, 1.0))])[0]
        return raw, label

    def __getitem__(self, i: int) -> dict:
        raw, label = self.raw(i)
        touch, params = self.transform.load(torch.from_numpy(raw))
        return {"touch": touch, "touch_aug": params, "sensor": self.sensor, "label": label, "source": self.name}


class SyntheticPretrain(_Synthetic):
    """One pre-training source. ``clip``: ``image`` (3,H,W), ``video`` (4,3,H,W) (stage 2 adds vision/text with
    flags), ``cross_image`` (3,H,W) / ``cross_video`` (3,3,H,W) frames for :class:`~anytouch.data.cross.
    CrossSensorDataset` (``object_ids`` / ``sensor_ids`` attributes: with k sensors, sample i shows object
    ``(i // k) % 16`` through sensor ``i % k``, so consecutive TacQuad samples show one object through all three)."""

    def __init__(self, spec: DatasetSpec, image_size: int, cfg: SyntheticConfig, clip: str, stage: int, train: bool,
                 vision_size: int, antialias: Optional[bool] = None, jitter=TOUCH_JITTER):
        name = spec.name
        if clip in ("video", "cross_video") and not spec.video:
            raise ValueError(f"synthetic {name!r} has no clips (like the real {name}); use clip='image'")
        # cross-sensor anchors get their own count so that one cross batch fits
        count = cfg.cross_samples if (clip.startswith("cross") and spec.cross_anchor) else cfg.num_samples
        super().__init__(name, "train", cfg, range(count))
        self.name, self.clip, self.vision_size = name, clip, vision_size
        self.multimodal = stage == 2 and not clip.startswith("cross")
        self.spec, self.twin = spec, spec.synthetic
        self.num_frames = {"image": 1, "video": 4, "cross_image": 1, "cross_video": 3}[clip]
        self._cache: Dict[int, tuple] = {}
        n, k = np.arange(count), len(spec.sensors)
        self.object_ids = (n // k) % OBJECTS_PER_SOURCE
        self.sensor_ids = np.asarray(spec.sensors)[n % k]
        if antialias is None:  # docs/original/data.md#transforms: no antialiasing for stage-1 video and cross video
            antialias = not (clip == "cross_video" or (clip == "video" and stage == 1))
        self.touch_tf = TouchTransform(image_size, train=train, jitter=jitter, antialias=antialias)
        self.vision_tf = VisionTransform(vision_size, train=train)

    def object_scene(self, rng: np.random.Generator, obj: int):
        """Scene of object ``obj`` of this source: material and shape fixed per object, pose drawn from ``rng``."""
        material = TAG_MATERIALS[self.twin.materials[obj % len(self.twin.materials)]]
        shape = random_scene(np.random.default_rng(_seed(self.cfg.seed, self.name, "object", obj)), material).shape
        return random_scene(rng, material, shape=shape)

    def _content(self, i: int) -> tuple:
        """The rendered (augmentation-free) content of sample ``i``: (raw frames uint8 (T,3,R,R), camera image
        (3,R,R) or None, caption or None). A pure function of i, so it is memoised (bounded, per process)."""
        if i in self._cache:
            return self._cache[i]
        rng = self._rng(i)
        scene = self.object_scene(rng, int(self.object_ids[i]))
        top = float(rng.uniform(0.6, 1.0))
        depths = [top] if self.num_frames == 1 else list(np.linspace(top * 0.3, top, self.num_frames))
        raw = render_touch(scene, LOOKS[int(self.sensor_ids[i])], self.cfg.render_size, rng, depths,
                           stride=float(self.spec.stride))
        vision = text = None
        if self.multimodal:
            if "vision" in self.spec.modalities:
                vision = render_vision(scene, self.cfg.render_size, rng)
            if "text" in self.spec.modalities and rng.random() >= self.twin.text_withheld:
                text = caption(scene.material, int(rng.integers(4)))
        if len(self._cache) < _CACHE_SIZE:
            self._cache[i] = (raw, vision, text)
        return raw, vision, text

    def __getitem__(self, i: int) -> dict:
        raw, vision, text = self._content(i)
        touch, params = self.touch_tf.load(torch.from_numpy(raw if self.num_frames > 1 else raw[0]))
        sample = {"touch": touch, "touch_aug": params, "sensor": int(self.sensor_ids[i]), "source": self.name}
        if self.multimodal:
            if vision is not None:
                sample["vision"], sample["vision_flag"] = self.vision_tf.load(torch.from_numpy(vision)), 1
            else:
                sample["vision"] = torch.zeros(3, self.vision_size, self.vision_size, dtype=torch.uint8)
                sample["vision_flag"] = 0
            ids, mask = _caption_tokens(text) if text is not None else empty_text()
            sample.update(text_ids=ids, text_mask=mask, text_flag=int(text is not None))
        return sample


_IGNORED = ("path", "text_dir", "split_id", "on_error")  # real-data options without meaning for synthetic data


def build_synthetic(name: str, split: str = "train", image_size: int = 224, *, clip: str = "image", stage: int = 1,
                    train: Optional[bool] = None, synthetic: Optional[SyntheticConfig] = None,
                    config: Optional[SyntheticConfig] = None, num_samples: Optional[int] = None,
                    seed: Optional[int] = None, render_size: Optional[int] = None, vision_size: int = 224,
                    val_fraction: float = 0.0, val_seed: int = 0, sensor: Optional[int] = None,
                    antialias: Optional[bool] = None, jitter=TOUCH_JITTER, **options) -> Dataset:
    """The synthetic twin of registered dataset ``name``, as its spec's ``synthetic`` field describes it.

    Args:
        name: a pre-training source (``tacquad`` ... ``ycb_slide``) or a probe set (``tag_material`` ... ``of2``),
            or any dataset registered with a synthetic twin.
        split: probes: ``train`` / ``val`` / ``test`` (``val`` needs ``val_fraction > 0``); pre-training: ``train``.
        image_size: side of the touch tensors; ``vision_size``: side of stage-2 camera images.
        clip: pre-training only: ``image`` (3,H,W), ``video`` (4,3,H,W), ``cross_image`` / ``cross_video``
            ((3,H,W) / (3,3,H,W) frames with ``object_ids`` / ``sensor_ids``, for the cross-sensor sampler).
        stage: 1 (touch, sensor, source) or 2 (image/video add vision, vision_flag, text_ids, text_mask, text_flag).
        train: augmentation on/off (default: on for ``split="train"``, except OF2, like the real sets).
        synthetic: the :class:`SyntheticConfig` (``config`` is accepted as another name for it); ``num_samples``,
            ``seed``, ``render_size`` override its fields.
        val_fraction, val_seed: carve a validation part out of a probe training set (:func:`carve_validation`).
        sensor: probe sensor id (default: the spec's first sensor id: 0 for TAG and Feel, -1 for OF1/OF2).
        antialias, jitter: pre-training touch transform settings (default as the real loaders,
        docs/original/data.md#transforms).
        options: ``path``, ``text_dir``, ``split_id``, ``on_error`` are accepted and have no effect here.
    Returns:
        a Dataset of dicts following the sample contract of docs/design.md.
    """
    spec = get(name)
    if spec.synthetic is None:
        raise ValueError(f"dataset {name!r} declares no synthetic twin (DatasetSpec.synthetic is None)")
    unknown = sorted(set(options) - set(_IGNORED))
    if unknown:
        raise TypeError(f"build_synthetic({name!r}): unknown option(s) {unknown}")
    if synthetic is not None and config is not None:
        raise TypeError("pass the SyntheticConfig as 'synthetic' or as 'config', not both")
    cfg = synthetic if synthetic is not None else (config if config is not None else SyntheticConfig())
    cfg = replace(cfg, **{k: v for k, v in dict(num_samples=num_samples, seed=seed, render_size=render_size).items()
                          if v is not None})
    train = default_train(name, split) if train is None else bool(train)
    if isinstance(spec.synthetic, ProbeTwin):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split {split!r} of synthetic {name!r}; expected 'train', 'val' or 'test'")
        indices = list(range(num_samples if num_samples is not None else cfg.probe_samples))
        if split != "test":
            indices = carve_validation(indices, split, val_fraction, val_seed)
        sensor = spec.sensors[0] if sensor is None else sensor
        return SyntheticProbe(name, spec.synthetic, split, image_size, cfg, train, indices, sensor)
    if clip not in CLIP_KINDS:
        raise ValueError(f"clip {clip!r}; expected one of {CLIP_KINDS}")
    if stage not in (1, 2):
        raise ValueError(f"stage {stage!r}; expected 1 or 2")
    if split != "train":
        raise ValueError(f"pre-training set {name!r} has only split 'train' (docs/original/data.md#transforms), got {split!r}")
    return SyntheticPretrain(spec, image_size, cfg, clip, stage, train, vision_size, antialias, jitter)
