"""Tiny on-disk trees in the original AnyTouch layout (docs/original/data.md), one builder per pre-training source.

Every frame is a constant 32x32 image whose colour encodes where it came from: red = 8 * (frame number % 32),
green = 8 * ``tag`` (a per-builder code, e.g. the sensor or recording), blue = 128. :func:`decode_frames` inverts
the evaluation transform so tests can check which frames a loader picked and in which order. Text files are
``(input_ids, attention_mask)`` pairs of ``tokenize(text_of(source, id))``, saved like the original's ``.pt`` files.

Each ``make_<source>(root)`` writes under ``root`` (the folder playing ``tactile_datasets/``) and returns ``root``.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, List, Sequence

import torch
from PIL import Image

from anytouch.preprocess import IMAGENET_MEAN, IMAGENET_STD
from anytouch.tokenizer import tokenize

SIZE = 32

__all__ = [
    "write_frame", "decode_frames", "text_of", "write_text", "make_tacquad", "make_tag", "make_visgel", "make_cloth",
    "make_of_real", "make_octopi", "make_tvl", "make_ssvtp", "make_ycb", "make_all", "TACQUAD_OBJECTS",
]


def write_frame(path: str, t: int, tag: int = 0) -> None:
    """A constant SIZE x SIZE frame encoding (t % 32, tag); JPEG or PNG by extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), (8 * (t % 32), 8 * tag, 128)).save(path, quality=95)


def decode_frames(touch: torch.Tensor) -> List[tuple]:
    """(3,H,W) or (T,3,H,W) constant frames (uint8 as loaders ship them, or ImageNet-normalised) -> [(t % 32, tag)]."""
    x = touch if touch.ndim == 4 else touch[None]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (x.float() if x.dtype == torch.uint8 else (x * std + mean) * 255).mean(dim=(-2, -1))  # (T, 3)
    return [(int(round(r / 8)), int(round(g / 8))) for r, g, _ in rgb.tolist()]


def text_of(source: str, text_id) -> str:
    return f"{source} surface number {text_id} feels smooth and hard"


def write_text(path: str, text: str, batch_dim: bool = False) -> None:
    """Save ``(input_ids, attention_mask)`` like the original's text files (optionally with a batch dim of 1)."""
    ids, mask = tokenize(text)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save((ids, mask) if batch_dim else (ids[0], mask[0]), path)


def _frames(folder: str, ts: Iterable[int], template: str, tag: int = 0) -> None:
    for t in ts:
        write_frame(os.path.join(folder, template.format(t)), t, tag)


def _csv(path: str, rows: Sequence[Sequence]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(",".join(str(c) for c in r) + "\n" for r in rows)


# TacQuad: part -> [(item, {sensor folder: (number of frames, start, end)}, number of camera frames)]
TACQUAD_OBJECTS = {
    "indoor": [
        ("cup", {"gelsight": (8, 2, 6), "digit": (6, 1, 4)}, 4),
        ("sponge", {"gelsight": (7, 3, 6)}, 2),  # a single-sensor object
    ],
    "outdoor": [
        ("rock", {"gelsight": (9, 3, 8), "digit": (8, 3, 7), "duragel": (8, 4, 7)}, 3),
    ],
}
TACQUAD_TAG = {"gelsight": 3, "digit": 1, "duragel": 4}  # green channel = sensor id


def make_tacquad(root: str) -> str:
    """``tacquad/contact_{indoor,outdoor}.csv``, ``data_<part>/<item>/<sensor>/<t>.png``, ``img_<sensor>/<k>.png``
    (camera frame k encodes (k, 20 + sensor id)), ``text_tacquad/tacquad_<part>_<row>.pt``."""
    for part, objects in TACQUAD_OBJECTS.items():
        rows = []
        for k, (item, sensors, n_img) in enumerate(objects):
            row = [item]
            for s in ("gelsight", "digit", "duragel"):
                if s not in sensors:
                    row += ["", ""]
                    continue
                n, start, end = sensors[s]
                base = os.path.join(root, "tacquad", f"data_{part}", item)
                _frames(os.path.join(base, s), range(n), "{}.png", TACQUAD_TAG[s])
                _frames(os.path.join(base, f"img_{s}"), range(n_img), "{}.png", 20 + TACQUAD_TAG[s])
                row += [start, end]
            rows.append(row)
            write_text(os.path.join(root, "text_tacquad", f"tacquad_{part}_{k}.pt"), text_of("tacquad", f"{part}{k}"))
        _csv(os.path.join(root, "tacquad", f"contact_{part}.csv"), rows)
    return root


TAG_FOLDERS = {"20190101_000000": 7, "20190102_000000": 5}


def make_tag(root: str) -> str:
    """``TAG/dataset/<folder>/{gelsight,video}_frame/%010d.jpg`` (video frame tag 9), ``TAG/label.txt`` (6 valid
    lines + 1 whose frame is missing), ``contact_text_tag_notest.csv`` (with header; row 2 has test_flag 1)."""
    for i, (folder, n) in enumerate(TAG_FOLDERS.items()):
        _frames(os.path.join(root, "TAG", "dataset", folder, "gelsight_frame"), range(n), "{:010d}.jpg", i)
        _frames(os.path.join(root, "TAG", "dataset", folder, "video_frame"), range(n), "{:010d}.jpg", 9)
    f1, f2 = TAG_FOLDERS
    label = [f"{f1}/{t:010d}.jpg,3" for t in (2, 3, 5, 6)] + [f"{f2}/{t:010d}.jpg,1" for t in (1, 4, 9)]
    with open(os.path.join(root, "TAG", "label.txt"), "w") as f:
        f.write("\n".join(label) + "\n")
    _csv(os.path.join(root, "contact_text_tag_notest.csv"), [
        ("folder", "image_name", "text_id", "test_flag"),
        (f1, f"{3:010d}.jpg", 0, 0), (f1, f"{5:010d}.jpg", 1, 1), (f2, f"{4:010d}.jpg", 2, 0)])
    for i in range(3):
        write_text(os.path.join(root, "text", f"tag_{i}.pt"), text_of("tag", i), batch_dim=i == 2)
    return root


def make_visgel(root: str) -> str:
    """``visgel/images/{touch,vision}/seen/rec<k>/frame%04d.jpg`` (rec2 has no camera frames);
    ``<root>/contact_visgel.csv`` (4 rows) and ``visgel/images/contact_visgel.csv`` (2 verbatim rows)."""
    for k, n in ((1, 6), (2, 4)):
        _frames(os.path.join(root, "visgel", "images", "touch", "seen", f"rec{k}"), range(n), "frame{:04d}.jpg", k)
    _frames(os.path.join(root, "visgel", "images", "vision", "seen", "rec1"), range(6), "frame{:04d}.jpg", 9)
    _csv(os.path.join(root, "contact_visgel.csv"),
         [[f"seen/rec1/frame{t:04d}.jpg"] for t in (1, 3, 5)] + [["seen/rec2/frame0003.jpg"]])
    _csv(os.path.join(root, "visgel", "images", "contact_visgel.csv"),
         [["tactile_datasets/visgel/images/touch/seen/rec1/frame0004.jpg"],
          ["tactile_datasets/visgel/images/touch/seen/rec2/frame0002.jpg"]])
    return root


def make_cloth(root: str) -> str:
    """``yuan18/Data_ICRA18/Data/<cloth>/<trial>/gelsight_frame/%04d.png``; root CSV 3 rows, cross CSV 1 row."""
    for k in (1, 2):
        _frames(os.path.join(root, "yuan18", "Data_ICRA18", "Data", str(k), "1", "gelsight_frame"), range(5),
                "{:04d}.png", k)
    _csv(os.path.join(root, "contact_yuan.csv"), [["1/1/gelsight_frame/0004.png"], ["2/1/gelsight_frame/0002.png"],
                                                  ["2/1/gelsight_frame/0003.png"]])
    _csv(os.path.join(root, "yuan18", "Data_ICRA18", "contact_yuan.csv"),
         [["tactile_datasets/yuan18/Data_ICRA18/Data/2/1/gelsight_frame/0004.png"]])
    return root


def make_of_real(root: str) -> str:
    """``objectfolder/real/tactile/<obj>/tactile_data/1/0/{gelsight,vision}/<n>.png``; stage-1, stage-2 and
    cross index files."""
    base = os.path.join(root, "objectfolder", "real", "tactile")
    for obj in (1, 2):
        _frames(os.path.join(base, str(obj), "tactile_data", "1", "0", "gelsight"), range(6), "{}.png", obj)
        _frames(os.path.join(base, str(obj), "tactile_data", "1", "0", "vision"), range(6), "{}.png", 10 + obj)
    rel = "{}/tactile_data/1/0/{}/{}.png"
    _csv(os.path.join(root, "contact_obj.csv"), [[rel.format(1, "gelsight", t)] for t in (3, 5)]
         + [[rel.format(2, "gelsight", 4)]])
    _csv(os.path.join(root, "contact_text_obj.csv"), [[rel.format(1, "gelsight", 5), rel.format(1, "vision", 5), 7],
                                                      [rel.format(2, "gelsight", 2), rel.format(2, "vision", 2), 8]])
    _csv(os.path.join(root, "objectfolder", "real", "contact_obj.csv"),
         [["tactile_datasets/objectfolder/real/tactile/" + rel.format(2, "gelsight", 5)]])
    for i in (7, 8):
        write_text(os.path.join(root, "text", f"obj_{i}.pt"), text_of("of_real", i))
    return root


def make_octopi(root: str) -> str:
    """Two recordings stored where different original loaders look (docs/original/defects.md#6-octopi-paths-disagree):
    ``octopi/processed/cup_1/`` and ``octopi/x/rock_2/`` (10-digit jpg). Rows ``x/<folder>/<frame>`` in
    ``contact_octopi.csv``, ``contact_text_octopi.csv`` (text ids 4, 5) and ``octopi/contact.csv`` (cross)."""
    _frames(os.path.join(root, "octopi", "processed", "cup_1"), range(6), "{:010d}.jpg", 1)
    _frames(os.path.join(root, "octopi", "x", "rock_2"), range(5), "{:010d}.jpg", 2)
    rows = [["x/cup_1/0000000004.jpg"], ["x/rock_2/0000000003.jpg"]]
    _csv(os.path.join(root, "contact_octopi.csv"), rows)
    _csv(os.path.join(root, "contact_text_octopi.csv"), [rows[0] + [4], rows[1] + [5]])
    _csv(os.path.join(root, "octopi", "contact.csv"), [["x/cup_1/0000000005.jpg"]])
    for i in (4, 5):
        write_text(os.path.join(root, "text", f"octopi_{i}.pt"), text_of("octopi", i))
    return root


# TVL-HCT ids in data1/sess1/tactile: 2, 3, 4, 10, 11, 12, 13, 120 (no 1: id 4's clip is incomplete, although the
# original's prefix match would take 10-...jpg for it)
TVL_IDS = (2, 3, 4, 10, 11, 12, 13, 120)


def make_tvl(root: str) -> str:
    """``TVL/tvl_dataset/hct/data{1,2}/contact.json`` + ``<sess>/{tactile,vision}/<id>-<suffix>.jpg``;
    ``contact_text_tvl.csv`` (text ids 5, 6)."""
    hct = os.path.join(root, "TVL", "tvl_dataset", "hct")
    for i in TVL_IDS:
        write_frame(os.path.join(hct, "data1", "sess1", "tactile", f"{i}-{1000 + i}.jpg"), i, 1)
        write_frame(os.path.join(hct, "data1", "sess1", "vision", f"{i}-{1000 + i}.jpg"), i, 11)
    for i in range(4):
        write_frame(os.path.join(hct, "data2", "sess7", "tactile", f"{i}-{50 + i}.jpg"), i, 2)
    for d, ids, sess in (("data1", (4, 13, 120), "sess1"), ("data2", (3,), "sess7")):
        names = sorted(os.listdir(os.path.join(hct, d, sess, "tactile")))
        paths = [f"{sess}/tactile/{n}" for n in names if int(n.split("-")[0]) in ids]
        with open(os.path.join(hct, d, "contact.json"), "w") as f:
            json.dump({"tactile": paths, "vision": [p.replace("tactile", "vision") for p in paths]}, f)
    _csv(os.path.join(root, "contact_text_tvl.csv"), [["data1/sess1/tactile/13-1013.jpg", 5],
                                                      ["data2/sess7/tactile/3-53.jpg", 6]])
    for i in (5, 6):
        write_text(os.path.join(root, "text", f"tvl_{i}.pt"), text_of("tvl", i))
    return root


def make_ssvtp(root: str) -> str:
    """``TVL/tvl_dataset/ssvtp/images_{tac,rgb}/image_<i>_{tac,rgb}.jpg`` (i = 0..3, 10) and the cross copy
    ``SSVTP/ssvtp_data/images_tac/`` (2 images, tag 5); texts ``ssvtp_<i>.pt``."""
    for i in (0, 1, 2, 3, 10):
        write_frame(os.path.join(root, "TVL", "tvl_dataset", "ssvtp", "images_tac", f"image_{i}_tac.jpg"), i, 1)
        write_frame(os.path.join(root, "TVL", "tvl_dataset", "ssvtp", "images_rgb", f"image_{i}_rgb.jpg"), i, 11)
        write_text(os.path.join(root, "text", f"ssvtp_{i}.pt"), text_of("ssvtp", i))
    for i in (0, 1):
        write_frame(os.path.join(root, "SSVTP", "ssvtp_data", "images_tac", f"image_{i}_tac.jpg"), i, 5)
    return root


def make_ycb(root: str) -> str:
    """``YCB-Slide/real/<obj>/dataset_{0,1}/frames/frame_%07d.jpg``: 12 and 7 frames."""
    for k, n in ((0, 12), (1, 7)):
        _frames(os.path.join(root, "YCB-Slide", "real", "004_sugar_box", f"dataset_{k}", "frames"), range(n),
                "frame_{:07d}.jpg", k)
    return root


def make_all(root: str) -> str:
    """Every pre-training source under one root."""
    for make in (make_tacquad, make_tag, make_visgel, make_cloth, make_of_real, make_octopi, make_tvl, make_ssvtp,
                 make_ycb):
        make(root)
    return root
