"""Bad files that must end in a named DataError, never a crash: damaged / oversized images, truncated videos,
non-UTF-8 index files (anytouch.data.io)."""
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from torch.utils.data import DataLoader

from anytouch.data import build_dataset, skipped_report
from anytouch.data.base import read_rows
from anytouch.data.io import DataError, _decoder_reason, open_text, read_image, read_video_frames
from anytouch.data.probe_sets import read_tag_list

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_data as F  # noqa: E402


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(w: int, h: int, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _damaged_pngs(w: int = 16, h: int = 16) -> dict:
    """PNGs whose chunk CRCs are all valid but whose image data is wrong: each made libpng abort the process."""
    rows = [b"\x00" + bytes(range(3 * w)) for _ in range(h)]
    raw = b"".join(rows)
    idat = bytearray(zlib.compress(raw))
    idat[-1] ^= 0xFF  # zlib's adler32 check only: "IDAT: incorrect data check"
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    data_check = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", bytes(idat)) + _chunk(b"IEND", b"")
    bad_filter = b"".join(rows[:3]) + b"\x07" + rows[3][1:] + b"".join(rows[4:])
    return {"data_check.png": data_check, "bad_filter.png": _png(w, h, bad_filter), "short.png": _png(w, h, raw[:-20])}


def test_damaged_images_raise_data_error_in_a_subprocess(tmp_path):
    """Crafted damaged PNGs, plus bytes flipped all over small PNG / JPEG / GIF / WebP files: each read decodes or
    raises DataError naming the file. Runs in a child process: before the fix, libpng (via torchvision) killed it
    with SIGSEGV (exit -11) on each crafted PNG."""
    for name, data in _damaged_pngs().items():
        (tmp_path / f"crafted_{name}").write_bytes(data)
    # 20,000 x 20,000 (400 Mpx) from a tiny IDAT: decoding would allocate 1.2 GB before anything was checked
    (tmp_path / "crafted_oversized.png").write_bytes(_png(20_000, 20_000, b""))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG", "GIF", "WEBP"):
        img.save(tmp_path / f"good.{fmt.lower()}", fmt)
        data = (tmp_path / f"good.{fmt.lower()}").read_bytes()
        for k, pos in enumerate(np.linspace(16, len(data) - 2, 12).astype(int)):
            bad = bytearray(data)
            bad[pos] ^= 0x5A
            (tmp_path / f"flipped{k}.{fmt.lower()}").write_bytes(bytes(bad))
    script = textwrap.dedent(f"""
        import glob, os
        from anytouch.data.io import DataError, read_image
        for path in sorted(glob.glob(os.path.join({str(tmp_path)!r}, "[cf]*"))):
            try:
                read_image(path)
            except DataError as e:
                assert e.path == path and path in str(e), e
                print("DataError", os.path.basename(path), e)
            else:
                print("decoded", os.path.basename(path))
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-2000:]}"
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 + 4 * 12, proc.stdout
    crafted = {ln.split()[1]: ln for ln in lines if ln.split()[1].startswith("crafted_")}
    assert len(crafted) == 4 and all(ln.startswith("DataError") for ln in crafted.values()), crafted
    oversized = crafted.pop("crafted_oversized.png")
    assert "(400,000,000 pixels) is larger than the reader's limit of 178,956,970" in oversized
    assert all("corrupt or truncated" in ln for ln in crafted.values()), crafted


def test_skip_mode_skips_a_damaged_png_in_a_worker(tmp_path):
    """Before the fix the DataLoader worker died with SIGSEGV, naming no file, even with on_error=skip."""
    F.make_cloth(str(tmp_path))
    ds = build_dataset("cloth", root=str(tmp_path), image_size=16, vision_size=16, train=False, clip="image",
                       on_error="skip")
    bad = ds.entry(1)["frames"][0]
    with open(bad, "wb") as f:
        f.write(_damaged_pngs()["data_check.png"])
    batches = list(DataLoader(ds, batch_size=len(ds), num_workers=1))
    assert sum(len(b["sensor"]) for b in batches) == len(ds)
    report = skipped_report(ds)
    assert [(r["index"], r["path"]) for r in report] == [(1, bad)] and "corrupt or truncated" in report[0]["reason"]


def test_oversized_jpeg_refused_from_the_header(tmp_path):
    """(A 20,000 x 20,000 PNG is in the subprocess test: decoding it used to crash the process.)"""
    # a JPEG header claiming 65,535 x 8 pixels: libjpeg's side limit, reported without a decoder backtrace
    jpg = tmp_path / "wide.jpg"
    Image.new("RGB", (16, 8)).save(jpg)
    data = bytearray(jpg.read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 8, 65_535)
    jpg.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"is 65535 x 8 pixels, larger than the reader's limit of 65,500 pixels per"):
        read_image(str(jpg))


def test_decoder_reason_drops_source_location_and_backtrace():
    e = RuntimeError("decode_jpeg, /src/vision/decode_jpeg.cpp:171, Maximum supported image dimension is 65500 "
                     "pixels\nException raised from decode_jpeg at /src/decode_jpeg.cpp:631 (most recent call first):"
                     "\nframe #0: c10::Error::Error(...) + 0x9 (0x7f in libc10.so)\n... (line 631)")
    assert _decoder_reason(e) == "Maximum supported image dimension is 65500 pixels"


def _video(path, frames: int = 10, keep: float = 1.0):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_truncated_video_warns_or_raises_with_frame_counts(tmp_path, recwarn):
    full, cut = tmp_path / "full.avi", tmp_path / "cut.avi"
    _video(full)
    _video(cut, keep=0.6)  # the AVI header still promises 10 frames; 4 decode
    assert len(list(read_video_frames(str(full), strict=True))) == 10 and not recwarn.list
    with pytest.warns(UserWarning, match=r"cut\.avi: decoded 4 of 10 frames"):
        frames = list(read_video_frames(str(cut)))
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    with pytest.raises(DataError, match=r"cut\.avi: decoded 4 of 10 frames") as e:
        list(read_video_frames(str(cut), strict=True))
    assert e.value.path == str(cut)
    with pytest.raises(DataError, match="video file not found"):
        list(read_video_frames(str(tmp_path / "missing.avi")))
    from anytouch.embed import iter_units

    with pytest.warns(UserWarning, match=r"cut\.avi: decoded 4 of 10 frames"):
        assert [t for _, _, t, _ in iter_units([("video", cut)], 16)] == [0, 1]  # 2 windows, and a warning
    with pytest.raises(DataError, match=r"decoded 4 of 10 frames"):
        list(iter_units([("video", cut)], 16, strict=True))
    from anytouch.checkpoint import save_checkpoint
    from anytouch.cli import main
    from anytouch.models import AnyTouchModel
    from anytouch.models.config import get_arch

    ckpt = save_checkpoint(tmp_path / "tiny.pt", AnyTouchModel(get_arch("tiny"), towers=False), {})
    assert main(["embed", str(cut), "-c", str(ckpt), "-o", str(tmp_path / "f.npy"), "--strict"]) == 2
    assert not (tmp_path / "f.npy").exists()  # anytouch embed --strict: an error, nothing written


def test_non_utf8_index_files_name_file_and_line(tmp_path):
    csv = tmp_path / "contact.csv"
    csv.write_bytes(b"a/0001.png,1\nb/0002.png,2\nc/caf\xe9.png,3\n")
    with pytest.raises(DataError, match=r"contact\.csv:3: byte 0xe9 at offset 31 is not UTF-8") as e:
        list(read_rows(str(csv)))
    assert e.value.path == str(csv)
    tag = tmp_path / "train.txt"
    tag.write_bytes(b"x/1.jpg,0\n\xff\xfe,1\n")
    with pytest.raises(DataError, match=r"train\.txt:2: byte 0xff"):
        read_tag_list(str(tag))
    ok = tmp_path / "ok.csv"
    ok.write_bytes("a,\u00e9\r\nb,2".encode())
    with open_text(str(ok), newline="") as f, open(ok, encoding="utf-8", newline="") as ref:
        assert f.read() == ref.read()


def test_preprocess_refuses_nan_and_out_of_range_floats_in_both_paths():
    from anytouch.preprocess import preprocess_touch, preprocess_touch_batch, preprocess_vision

    frame = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0))
    nan = frame.clone()
    nan[2, 3, 1] = float("nan")
    for call in (lambda x: preprocess_touch(x, size=8), lambda x: preprocess_touch_batch(x[None], size=8),
                 lambda x: preprocess_touch(x.numpy(), size=8), lambda x: preprocess_vision(x, size=8)):
        with pytest.raises(ValueError, match="1 of 192 pixel values are NaN or infinite"):
            call(nan)
        with pytest.raises(ValueError, match=r"must be in \[0, 1\], got values in \[[0-9.]+, 2[0-9.]+\]"):
            call(frame * 255)  # a 0..255 float frame: clamping made ~99 % of it white
        with pytest.raises(ValueError, match=r"got values in \[-2"):
            call((frame - 0.5) / 0.229)  # already normalised
        assert torch.isfinite(call(frame)).all()
    edge = torch.tensor([0.0, 1.0, 1.001, -0.001]).repeat(48).view(8, 8, 3)  # within one grey level: clamped
    torch.testing.assert_close(preprocess_touch(edge, size=8), preprocess_touch(edge.clamp(0, 1), size=8))
