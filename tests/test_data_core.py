"""Frame reading, transforms (docs/original/data.md#transforms) and text (docs/original/data.md#text) of
anytouch.data."""
import gzip
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from anytouch.data.io import DataError, read_image
from anytouch.data.text import empty_text, encode_text, load_text_file
from anytouch.data.transforms import TouchTransform, VisionTransform
from anytouch.preprocess import CLIP_STD
from anytouch.preprocess import preprocess_touch, preprocess_vision
from anytouch.tokenizer import tokenize


def _img(h=20, w=30, c=3, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    return a[..., 0] if c == 1 else a


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB"), ("TIFF", "L")])
def test_read_image_formats_to_rgb(tmp_path, fmt, mode):
    a = _img(c={"RGB": 3, "L": 1, "RGBA": 4}[mode])
    p = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(a).save(p, fmt)
    x = read_image(str(p))
    assert x.dtype == torch.uint8 and x.shape == (3, 20, 30)
    ref = np.asarray(Image.fromarray(a).convert("RGB"))
    assert np.array_equal(x.permute(1, 2, 0).numpy(), ref)


def test_read_image_jpeg_close_to_pil(tmp_path):
    p = tmp_path / "x.jpg"
    Image.fromarray(_img()).save(p, quality=90)
    ref = np.asarray(Image.open(p).convert("RGB")).astype(int)
    assert np.abs(read_image(str(p)).permute(1, 2, 0).numpy().astype(int) - ref).max() <= 3


def test_read_image_16bit_scaled_to_uint8(tmp_path):
    """16-bit PNGs (cv2: BGR colour; PIL: grey) and a 16-bit grey TIFF (PIL path) -> uint8 RGB, value >> 8."""
    import cv2

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), bgr)
    x = read_image(str(tmp_path / "c16.png"))
    assert x.dtype == torch.uint8 and x.shape == (3, 12, 10)
    assert np.array_equal(x.permute(1, 2, 0).numpy(), (bgr[..., ::-1] >> 8).astype(np.uint8))
    grey = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
    for name in ("g16.png", "g16.tif"):
        Image.fromarray(grey).save(tmp_path / name)
        x = read_image(str(tmp_path / name))
        assert x.dtype == torch.uint8 and x.shape == (3, 12, 10), name
        assert all(np.array_equal(x[c].numpy(), (grey >> 8).astype(np.uint8)) for c in range(3)), name
    assert TouchTransform(16, train=True)(read_image(str(tmp_path / "c16.png"))).shape == (3, 16, 16)


def test_read_image_errors_name_the_file(tmp_path):
    good = io.BytesIO()
    Image.fromarray(_img(64, 64)).save(good, "JPEG")
    data = good.getvalue()
    cases = {"missing.png": None, "empty.jpg": b"", "trunc.jpg": data[: len(data) // 2], "junk.png": b"not an image"}
    for name, content in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        with pytest.raises(DataError) as e:
            read_image(str(p))
        assert str(p) in str(e.value) and e.value.path == str(p)
    with pytest.raises(DataError, match="truncated"):
        read_image(str(tmp_path / "trunc.jpg"))


def test_touch_transform_eval_equals_preprocess_touch():
    clip = torch.from_numpy(np.stack([_img(40, 50, seed=s) for s in range(4)])).permute(0, 3, 1, 2)
    out = TouchTransform(16, train=False)(clip)
    assert out.shape == (4, 3, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out, preprocess_touch(list(clip), 16), atol=1e-5)
    assert torch.allclose(TouchTransform(16, train=False)(clip[0]), preprocess_touch(clip[0], 16), atol=1e-5)


def test_touch_transform_same_augmentation_for_every_frame():
    torch.manual_seed(0)
    frame = torch.from_numpy(_img(24, 24)).permute(2, 0, 1)
    outs = [TouchTransform(12)(frame.expand(4, -1, -1, -1).clone()) for _ in range(8)]
    for o in outs:  # identical frames -> identical outputs: flips and jitter drawn once per clip
        assert torch.equal(o, o[:1].expand_as(o))
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])  # but augmentation does vary between calls
    # frames differing by a constant: with shared flips, the difference stays spatially constant
    ramp = (torch.arange(24)[None, :] * 3 + torch.arange(24)[:, None] * 7).to(torch.uint8)
    clip = torch.stack([(ramp + 10 * k).expand(3, -1, -1) for k in range(3)])
    flips = set()
    for _ in range(12):
        out = TouchTransform(24, jitter=None)(clip)
        for k in (1, 2):
            assert float((out[k] - out[0]).std(dim=(-2, -1)).max()) < 1e-4
        flips.add((bool(out[0, 0, 0, 0] > out[0, 0, 0, -1]), bool(out[0, 0, 0, 0] > out[0, 0, -1, 0])))
    assert len(flips) > 1


def test_touch_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="TouchTransform"):
        TouchTransform(8)(torch.zeros(4, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError):
        TouchTransform(8)(torch.zeros(3, 8, 8, dtype=torch.int32))


def test_vision_transform():
    img = torch.from_numpy(_img(30, 50)).permute(2, 0, 1)
    # the loaders ship camera images as uint8: at most half an 8-bit level from preprocess_vision
    delta = (VisionTransform(24, train=False)(img) - preprocess_vision(img, 24)).abs().max()
    assert 0 < delta <= 0.5 / 255 / min(CLIP_STD) + 1e-6
    torch.manual_seed(0)
    outs = [VisionTransform(24)(img) for _ in range(4)]
    assert all(o.shape == (3, 24, 24) for o in outs)
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def _hf_clip_tokenizer(folder):
    """HF CLIPTokenizer built offline from open_clip's BPE file, the way HF's CLIP vocab was derived from it."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1: 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                         pad_token="<|endoftext|>")


def test_original_text_files_match_raw_strings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = _hf_clip_tokenizer(str(tmp_path))
    texts = ["This tactile image feels smooth, hard and cold.", "a ROUGH   fabric!! with 123 bumps & dots",
             "soft " * 60, "", "Dépôt: ünïcode tëxt"]
    for i, text in enumerate(texts):
        enc = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        p = str(tmp_path / f"t{i}.pt")
        torch.save((enc["input_ids"][0], enc["attention_mask"][0]), p)
        ids, mask = load_text_file(p)
        ref_ids, ref_mask = encode_text(text)
        assert ids.dtype == torch.long and ids.shape == (77,)
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask), text
        assert int(ids.argmax()) == int(mask.sum()) - 1  # EOT (49407) is the max id, pooled by argmax
    assert int(load_text_file(str(tmp_path / "t3.pt"))[1].sum()) == 2  # "" -> SOT, EOT


def test_text_file_variants_and_errors(tmp_path):
    ids, mask = tokenize("hello")
    torch.save((ids.int(), mask.int()), tmp_path / "batch.pt")  # (1, 77) int32, as HF return_tensors="pt"
    torch.save({"input_ids": ids[0], "attention_mask": mask[0]}, tmp_path / "dict.pt")
    for name in ("batch.pt", "dict.pt"):
        got = load_text_file(str(tmp_path / name))
        assert torch.equal(got[0], ids[0]) and got[0].dtype == torch.long
    torch.save((ids[0, :76], mask[0, :76]), tmp_path / "short.pt")
    with pytest.raises(DataError, match=r"short\.pt.*\(77,\)"):
        load_text_file(str(tmp_path / "short.pt"))
    with pytest.raises(DataError, match="not found"):
        load_text_file(str(tmp_path / "nope.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.pt"):
        load_text_file(str(tmp_path / "junk.pt"))
    bad = ids[0].clone()
    bad[5] = 49408  # one past CLIP's vocabulary: training would hit a device assert in the embedding
    torch.save((bad, mask[0]), tmp_path / "oov.pt")
    with pytest.raises(DataError, match=r"oov\.pt: token ids span \d+\.\.49408; expected CLIP BPE ids in 0\.\.49407"):
        load_text_file(str(tmp_path / "oov.pt"))
    z_ids, z_mask = empty_text()
    assert z_ids.shape == (77,) and int(z_ids.abs().sum() + z_mask.abs().sum()) == 0
