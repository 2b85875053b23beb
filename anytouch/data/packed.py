"""A packed store: a dataset's touch frames decoded once, at model resolution, into memory-mapped uint8 shards.

Layout of a store folder::

    index.json          format, frame size, shard list (file, frames, sha256), tables (kind -> sample arrays file)
    shard-00000.u8      raw uint8 frames (n, 3, size, size), C order; every frame stored once
    table-<name>.npz    per sample of table ``name`` (a kind for stage 1, ``stage2-<kind>`` for stage 2, whose loaders
                        select their samples by the text index): ``frames`` (n, T) global frame ids (oldest first), ``sensor``,
                        ``object``, ``label`` (-1 where the source has none); the file's sha256 is in index.json.
                        Stage-2 tables (``"stage2": true`` in the index) add ``vision`` (n, 3) = byte offset, height,
                        width of the sample's camera image in ``vision.u8`` (offset -1: none), ``text_ids`` (n, L)
                        int32, ``text_mask`` (n, L) uint8 and ``text_flag`` (n,)
    vision.u8           camera images, each once, uint8 (3, h, w) C order, shorter side = ``vision_size``, resized
                        (bicubic, antialiased) but neither cropped nor augmented

A frame shared by several samples (an image sample and the clips around it) is stored once, so every kind gets the
antialiased resize (the raw loaders skip antialiasing for stage-1 and cross-sensor clips, as the original did). Frame ``g`` lives in
shard ``g // frames_per_shard`` at row ``g % frames_per_shard``. Readers map the shards lazily in each process
(nothing is copied when a DataLoader forks or pickles the dataset), so random access costs one page-cache copy of
``T * 3 * size * size`` bytes per sample. Everything is written under temporary names and renamed; ``index.json``
comes last, so a folder without it is an unfinished store.

:class:`PackedDataset` yields the worker-side sample contract of :mod:`anytouch.data.device_aug` -- uint8 frames
plus the sample's augmentation parameters, drawn under the caller's per-sample seed; with ``stage=2`` also the
stage-2 keys (``vision`` rotated / flipped on read and centre-cropped, the flags and the text) -- and
:func:`verify_packed` checks sizes and checksums (for ``anytouch verify``).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..preprocess import vision_shorter_side
from .device_aug import DEFAULT_JITTER, draw_touch_params, load_touch_uint8
from .io import DataError, read_image
from .text import empty_text, load_text_file
from .transforms import VisionTransform

__all__ = ["FORMAT", "PackedStoreError", "PackWriter", "pack_dataset", "pack_root", "PackedDataset", "verify_packed",
           "packed_stores", "stage2_table"]

FORMAT = "anytouch-packed-1"
INDEX = "index.json"
VISION = "vision.u8"
_HASH_CHUNK = 1 << 24


class PackedStoreError(DataError):
    """A packed store that is missing, unfinished, inconsistent or corrupt (``path`` = the offending file)."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class PackWriter:
    """Writes a store: :meth:`add_frame` returns a global frame id, :meth:`add_sample` records a sample of a kind,
    :meth:`close` writes the tables and the index (call it last; until then the folder is not a store)."""

    def __init__(self, out_dir: str, size: int, source: str, frames_per_shard: int = 4096,
                 vision_size: Optional[int] = None):
        if frames_per_shard < 1:
            raise ValueError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
        if os.path.exists(os.path.join(out_dir, INDEX)):
            raise FileExistsError(f"{out_dir} already holds a packed store ({INDEX}); pack into an empty folder")
        os.makedirs(out_dir, exist_ok=True)
        self.dir, self.size, self.source, self.per_shard = out_dir, int(size), source, int(frames_per_shard)
        self.shards: List[Dict] = []
        self.tables: Dict[str, Dict[str, list]] = {}
        self.frames = 0
        self._file = None
        self.vision_size, self.vision_bytes, self._vision_file = vision_size, 0, None

    def add_frame(self, frame: torch.Tensor) -> int:
        """Append one (3, size, size) uint8 frame; returns its global id."""
        if frame.dtype != torch.uint8 or tuple(frame.shape) != (3, self.size, self.size):
            raise ValueError(f"{self.source}: a packed frame must be uint8 (3, {self.size}, {self.size}), got "
                             f"{frame.dtype} {tuple(frame.shape)}")
        if self.frames % self.per_shard == 0:
            self._finish_shard()
            name = f"shard-{len(self.shards):05d}.u8"
            self.shards.append({"file": name, "frames": 0})
            self._file = open(os.path.join(self.dir, name + ".tmp"), "wb")
        self._file.write(frame.contiguous().numpy().tobytes())
        self.shards[-1]["frames"] += 1
        self.frames += 1
        return self.frames - 1

    def add_vision(self, image: torch.Tensor) -> Tuple[int, int, int]:
        """Append one camera image, uint8 (3, h, w) with shorter side ``vision_size``; returns (offset, h, w)."""
        if self.vision_size is None:
            raise ValueError(f"{self.source}: this writer was opened without vision_size, it takes no camera images")
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) != \
                self.vision_size:
            raise ValueError(f"{self.source}: a packed camera image must be uint8 (3, h, w) with shorter side "
                             f"{self.vision_size}, got {image.dtype} {tuple(image.shape)}")
        if self._vision_file is None:
            self._vision_file = open(os.path.join(self.dir, VISION + ".tmp"), "wb")
        offset = self.vision_bytes
        self._vision_file.write(image.contiguous().numpy().tobytes())
        self.vision_bytes += image.numel()
        return offset, int(image.shape[1]), int(image.shape[2])

    def add_sample(self, kind: str, frame_ids: Sequence[int], sensor: int, obj: int = -1, label: int = -1,
                   stage2: Optional[Tuple[Optional[Tuple[int, int, int]], Optional[tuple]]] = None) -> None:
        """Record one sample of ``kind`` made of frames ``frame_ids`` (oldest first). ``stage2`` = (the
        :meth:`add_vision` reference or None, (text ids, text mask) or None) for a stage-2 sample; the samples of
        one kind are all stage-2 or none."""
        table = self.tables.setdefault(kind, {"frames": [], "sensor": [], "object": [], "label": [],
                                              "stage2": stage2 is not None})
        if table["frames"] and len(frame_ids) != len(table["frames"][0]):
            raise ValueError(f"{self.source}/{kind}: samples of one kind need the same number of frames, got "
                             f"{len(frame_ids)} after {len(table['frames'][0])}")
        if not all(0 <= f < self.frames for f in frame_ids):
            raise ValueError(f"{self.source}/{kind}: frame ids {list(frame_ids)} not among the {self.frames} written")
        if stage2 is not None and self.vision_size is None:
            raise ValueError(f"{self.source}/{kind}: stage-2 samples need a writer opened with vision_size")
        if table["stage2"] != (stage2 is not None):
            raise ValueError(f"{self.source}/{kind}: stage-2 and touch-only samples cannot share one kind")
        for key, value in (("frames", list(frame_ids)), ("sensor", sensor), ("object", obj), ("label", label)):
            table[key].append(value)
        if stage2 is not None:
            vision, text = stage2
            ids, mask = text if text is not None else empty_text()
            for key, value in (("vision", vision or (-1, 0, 0)), ("text_ids", ids.tolist()),
                               ("text_mask", mask.tolist()), ("text_flag", int(text is not None))):
                table.setdefault(key, []).append(value)

    def _finish_shard(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        name = self.shards[-1]["file"]
        os.replace(os.path.join(self.dir, name + ".tmp"), os.path.join(self.dir, name))
        self.shards[-1]["sha256"] = _sha256(os.path.join(self.dir, name))

    def close(self) -> str:
        """Finish the last shard, write the tables and ``index.json``; returns the index path."""
        self._finish_shard()
        if not self.tables:
            raise ValueError(f"{self.source}: nothing to pack (no samples were added)")
        index = {"format": FORMAT, "source": self.source, "size": self.size, "frames": self.frames,
                 "frames_per_shard": self.per_shard, "shards": self.shards, "tables": {}}
        if self._vision_file is not None:
            self._vision_file.close()
            os.replace(os.path.join(self.dir, VISION + ".tmp"), os.path.join(self.dir, VISION))
            index["vision"] = {"file": VISION, "bytes": self.vision_bytes,
                               "sha256": _sha256(os.path.join(self.dir, VISION))}
        for kind, t in self.tables.items():
            name = f"table-{kind}.npz"
            tmp = os.path.join(self.dir, name + ".tmp.npz")
            arrays = dict(frames=np.asarray(t["frames"], np.int64), sensor=np.asarray(t["sensor"], np.int8),
                          object=np.asarray(t["object"], np.int32), label=np.asarray(t["label"], np.int64))
            if t["stage2"]:
                arrays.update(vision=np.asarray(t["vision"], np.int64), text_ids=np.asarray(t["text_ids"], np.int32),
                              text_mask=np.asarray(t["text_mask"], np.uint8),
                              text_flag=np.asarray(t["text_flag"], np.int8))
            np.savez(tmp, **arrays)
            os.replace(tmp, os.path.join(self.dir, name))
            index["tables"][kind] = {"file": name, "samples": len(t["sensor"]), "stage2": t["stage2"],
                                     "sha256": _sha256(os.path.join(self.dir, name))}
        if any(t["stage2"] for t in self.tables.values()):
            index["vision_size"] = self.vision_size
        path = os.path.join(self.dir, INDEX)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(index, f, indent=1)
        os.replace(path + ".tmp", path)
        return path


def pack_dataset(datasets: Dict[str, Dataset], out_dir: str, size: int, frames_per_shard: int = 4096) -> str:
    """Pack raw loaders (kind -> a TouchDataset of one source, e.g. ``{"image": ..., "video": ...}``) into one store.

    Frames are read once each (deduplicated by path across kinds), decoded and resized in uint8 to ``size``. A
    stage-2 loader (``multimodal``) also packs its camera images (once each, shorter side at its ``vision_size``)
    and its text. Returns the path of the written ``index.json``.
    """
    sources = {getattr(ds, "source", "") for ds in datasets.values()}
    if len(sources) != 1:
        raise ValueError(f"pack_dataset packs one source at a time, got {sorted(sources)}")
    vision_sizes = {ds.vision_size for ds in datasets.values() if getattr(ds, "multimodal", False)}
    if len(vision_sizes) > 1:
        raise ValueError(f"pack_dataset: the stage-2 loaders disagree on vision_size {sorted(vision_sizes)}")
    writer = PackWriter(out_dir, size, sources.pop(), frames_per_shard, next(iter(vision_sizes), None))
    ids: Dict[str, int] = {}
    images: Dict[str, Tuple[int, int, int]] = {}
    for kind, ds in datasets.items():
        for i in range(len(ds)):
            e = ds.entry(i)
            for p in e["frames"]:
                if p not in ids:
                    ids[p] = writer.add_frame(load_touch_uint8([p], size)[0])
            stage2 = None
            if getattr(ds, "multimodal", False):
                if e["vision"] is not None and e["vision"] not in images:
                    unit = vision_shorter_side(read_image(e["vision"]), writer.vision_size)
                    images[e["vision"]] = writer.add_vision((unit * 255).round_().to(torch.uint8))
                text = load_text_file(e["text"]) if e["text"] is not None else None
                stage2 = (images.get(e["vision"]), text)
            writer.add_sample(kind, [ids[p] for p in e["frames"]], e["sensor"], e.get("object", -1),
                              e.get("label", -1), stage2)
    return writer.close()


def pack_root(root: str, out_dir: str, size: int = 224, names: Optional[Sequence[str]] = None,
              kinds: Sequence[str] = ("image", "video"), log=print, stage: int = 2, vision_size: int = 224,
              text_dir: Optional[str] = None) -> List[str]:
    """``anytouch pack``: pack each pre-training source under ``root`` (all registered ones found, or ``names``) into
    ``out_dir/<source>`` with the given clip ``kinds`` (a source without clips gets ``image`` only). ``stage=2``
    (default) also packs the camera images (at ``vision_size``) and text of the image and video kinds, so both
    stages can train from the store; ``stage=1`` packs touch frames only. Returns the index paths written; a source
    whose store already exists is left alone (delete the folder to re-pack it)."""
    if stage not in (1, 2):
        raise ValueError(f"pack_root: stage must be 1 or 2, got {stage!r}")
    from .build import build_dataset  # here, not at the top: build imports the loaders, which import this module
    from .registry import get, names as registered

    written = []
    for name in names or registered("pretrain"):
        spec, store = get(name), os.path.join(out_dir, name)
        if os.path.isfile(os.path.join(store, INDEX)):
            log(f"{name}: {store} already packed, left as is")
            continue
        wanted = [k for k in kinds if spec.video or k in ("image", "cross_image")]
        try:
            # the stage-2 loaders select their samples by the text index, not the stage-1 one: separate tables
            tables = [(k, k, 1) for k in wanted]
            tables += [(stage2_table(k), k, 2) for k in wanted if stage == 2 and k in ("image", "video")]
            sets = {t: build_dataset(name, root=root, clip=k, stage=st, train=False, image_size=size,
                                     vision_size=vision_size, text_dir=text_dir,
                                     **(dict(pairs=False) if spec.cross_anchor else {})) for t, k, st in tables}
        except DataError as e:
            if names:
                raise
            log(f"{name}: not packed ({e})")
            continue
        written.append(pack_dataset(sets, store, size))
        log(f"{name}: packed {', '.join(f'{len(d)} {k}' for k, d in sets.items())} samples into {store}")
    return written


def stage2_table(kind: str) -> str:
    """The table name of ``kind``'s stage-2 samples (stage 1 uses ``kind`` itself)."""
    return f"stage2-{kind}"


def packed_stores(folder: str) -> List[str]:
    """The packed stores (folders with an ``index.json``) directly under ``folder``, sorted."""
    return sorted(os.path.join(folder, d) for d in os.listdir(folder) if os.path.isfile(os.path.join(folder, d, INDEX)))


def _read_index(store: str) -> dict:
    path = os.path.join(store, INDEX)
    if not os.path.isfile(path):
        raise PackedStoreError(f"not a packed store: {path} is missing (unfinished pack, or the wrong folder)", path)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PackedStoreError(f"unreadable packed-store index {path}: {e}", path) from e
    if index.get("format") != FORMAT:
        raise PackedStoreError(f"{path}: format {index.get('format')!r}, expected {FORMAT!r}", path)
    return index


def verify_packed(store: str, checksums: bool = True) -> dict:
    """Check a store: every shard and table present with the recorded size and (``checksums``) sha256.

    Returns the index. Raises:
        PackedStoreError: naming the first missing, truncated or corrupt file and what was expected.
    """
    index = _read_index(store)
    frame_bytes = 3 * index["size"] ** 2
    files = [(s["file"], s["sha256"], s["frames"] * frame_bytes) for s in index["shards"]]
    files += [(t["file"], t["sha256"], None) for t in index["tables"].values()]
    if "vision" in index:
        files.append((index["vision"]["file"], index["vision"]["sha256"], index["vision"]["bytes"]))
    for name, digest, nbytes in files:
        path = os.path.join(store, name)
        if not os.path.isfile(path):
            raise PackedStoreError(f"packed store {store}: file {name} listed in {INDEX} is missing", path)
        if nbytes is not None and os.path.getsize(path) != nbytes:
            what = "camera images" if name == VISION else (f"{nbytes // frame_bytes} frames of 3x{index['size']}x"
                                                           f"{index['size']}")
            raise PackedStoreError(f"packed store {store}: {name} has {os.path.getsize(path)} bytes, expected "
                                   f"{nbytes} ({what})", path)
        if checksums and _sha256(path) != digest:
            raise PackedStoreError(f"packed store {store}: checksum mismatch in {name} (sha256 {_sha256(path)}, "
                                   f"expected {digest}); the file is corrupt, re-pack this dataset", path)
    return index


class PackedDataset(Dataset):
    """Samples of one ``kind`` of a packed store: ``{"touch": uint8 (3,S,S) | (T,3,S,S), "touch_aug": (AUG_DIM,),
    "sensor", "source", "object", "label"}``; parameters drawn from torch's RNG (seed it per sample, as
    :class:`anytouch.engine.data.EpochSeeded` does). ``train=False`` gives identity parameters. ``stage=2`` adds
    the stage-2 keys of the raw loaders (``vision`` uint8 (3,V,V), ``vision_flag``, ``text_ids``, ``text_mask``,
    ``text_flag``), the camera image rotated / flipped (``train``) and centre-cropped on read, drawn after the touch
    parameters as the raw loaders draw them; the store must have been packed with stage 2."""

    def __init__(self, store: str, kind: str = "image", train: bool = True,
                 jitter: Optional[Sequence[float]] = DEFAULT_JITTER, stage: int = 1):
        self.store, self.kind, self.train, self.jitter = os.path.abspath(store), kind, bool(train), jitter
        index = _read_index(self.store)
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        self.stage2 = stage == 2
        table = stage2_table(kind) if self.stage2 else kind
        if self.stage2 and table not in index["tables"] and kind in index["tables"]:
            raise PackedStoreError(f"packed store {self.store} holds touch frames only for {kind!r} (no stage-2 "
                                   f"samples with camera images and text); re-pack it with anytouch pack --stage 2 "
                                   f"to train stage 2 on it", os.path.join(self.store, INDEX))
        if table not in index["tables"]:
            raise PackedStoreError(f"packed store {self.store} has no {table!r} samples; it has "
                                   f"{sorted(index['tables'])}", os.path.join(self.store, INDEX))
        if self.stage2 and not index["tables"][table].get("stage2"):
            raise PackedStoreError(f"packed store {self.store}: table {table!r} has no camera images or text",
                                   os.path.join(self.store, INDEX))
        self.source, self.size, self.per_shard = index["source"], index["size"], index["frames_per_shard"]
        self.shards = [(s["file"], s["frames"]) for s in index["shards"]]
        with np.load(os.path.join(self.store, index["tables"][table]["file"])) as t:
            self.frame_ids, self.sensor, self.object, self.label = t["frames"], t["sensor"], t["object"], t["label"]
            if self.stage2:
                self.vision, self.text_ids, self.text_mask, self.text_flag = (t["vision"], t["text_ids"],
                                                                              t["text_mask"], t["text_flag"])
        self.vision_size = index.get("vision_size")
        self.vision_tf = VisionTransform(self.vision_size, train=train) if self.stage2 else None
        self.vision_bytes = index.get("vision", {}).get("bytes", 0)
        self._maps: Dict[int, np.memmap] = {}
        self.sensor_ids, self.object_ids = self.sensor, self.object  # what the cross-sensor sampler reads

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}  # each process maps the shards itself
        return state

    def _shard(self, k: int) -> np.memmap:
        if k not in self._maps:
            name, n = self.shards[k]
            self._maps[k] = np.memmap(os.path.join(self.store, name), np.uint8, "r", shape=(n, 3, self.size, self.size))
        return self._maps[k]

    def _camera(self, index: int) -> torch.Tensor:
        offset, h, w = (int(v) for v in self.vision[index])
        if -1 not in self._maps:  # key -1: the camera-image file, mapped like the shards
            self._maps[-1] = np.memmap(os.path.join(self.store, VISION), np.uint8, "r", shape=(self.vision_bytes,))
        image = torch.from_numpy(self._maps[-1][offset:offset + 3 * h * w].reshape(3, h, w).copy())
        return self.vision_tf.load_resized(image)

    def frames(self, index: int) -> torch.Tensor:
        """The (T, 3, S, S) uint8 frames of sample ``index``."""
        ids = self.frame_ids[index]
        return torch.from_numpy(np.stack([self._shard(g // self.per_shard)[g % self.per_shard] for g in ids]))

    def __len__(self) -> int:
        return len(self.sensor)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.source}/{self.kind}: index {index} out of range for {len(self)} samples")
        frames = self.frames(index)
        sample = {"touch": frames[0] if len(frames) == 1 else frames,
                  "touch_aug": draw_touch_params(self.train, self.jitter), "sensor": int(self.sensor[index]),
                  "source": self.source, "object": int(self.object[index]), "label": int(self.label[index])}
        if self.stage2:
            has_image = int(self.vision[index, 0] >= 0)
            sample["vision"] = self._camera(index) if has_image else torch.zeros(3, self.vision_size, self.vision_size,
                                                                                 dtype=torch.uint8)
            sample["vision_flag"] = has_image
            sample["text_ids"] = torch.from_numpy(self.text_ids[index].astype(np.int64))
            sample["text_mask"] = torch.from_numpy(self.text_mask[index].astype(np.int64))
            sample["text_flag"] = int(self.text_flag[index])
        return sample

    def __repr__(self) -> str:
        return f"PackedDataset(store={self.store}, kind={self.kind}, n={len(self)}, size={self.size})"
