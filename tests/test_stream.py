"""anytouch stream / anytouch.stream: a recorded real-sensor-like clip stands in for the camera."""
import json
import re
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from anytouch2_fixtures import tiny_encoder

import anytouch
from anytouch.checkpoint import save_checkpoint
from anytouch.checkpoint.anytouch2 import export_safetensors
from anytouch.cli.main import main
from anytouch.models import AnyTouchModel, TouchEncoder
from anytouch.policy import TactileEncoder
from anytouch.stream import LatestFrame, open_source, run_stream

TINY = anytouch.get_arch("tiny")
H, W = 60, 80  # a DIGIT-like 4:3 frame, small


def gel_frame(contact: float, cx=0.5, cy=0.5, seed=0):
    """A gel-like RGB frame: a smooth coloured gradient (the LEDs), sensor noise, and a pressed blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W] / np.array([H, W])[:, None, None]
    img = np.stack([120 + 60 * xx, 100 + 50 * yy, 150 - 40 * xx], -1)
    img += contact * 90 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)[..., None]
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def write_clip(path, contacts, fps=30.0):
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for i, c in enumerate(contacts):
        out.write(cv2.cvtColor(gel_frame(c, seed=i), cv2.COLOR_RGB2BGR))
    out.release()
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.pt", AnyTouchModel(TINY, towers=False))


def test_stream_command_on_a_recorded_clip(ckpt, tmp_path, capsys):
    contacts = [0.0] * 14 + [1.0] * 10 + [0.0] * 6  # 10 background frames, then no contact / press / release
    clip = write_clip(tmp_path / "digit.avi", contacts)
    refs = tmp_path / "refs"
    for label, c in (("none", 0.0), ("press", 1.0)):
        (refs / label).mkdir(parents=True)
        Image.fromarray(gel_frame(c, seed=99)).save(refs / label / "a.png")
    out = tmp_path / "out"
    assert main(["stream", "--source", str(clip), "--sensor", "digit", "-c", str(ckpt), "--device", "cpu",
                 "--references", str(refs), "--out-dir", str(out), "--out", str(tmp_path / "panel.avi"),
                 "--source-fps", "200"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"(\d+) steps in [\d.]+ s on cpu: ([\d.]+) fps; end-to-end latency mean ([\d.]+) ms, p50 "
                     r"[\d.]+ ms, p95 [\d.]+ ms; dropped (\d+) of (\d+) captured frames", line)
    assert m, line
    steps, fps, latency, dropped, captured = int(m[1]), float(m[2]), float(m[3]), int(m[4]), int(m[5])
    assert captured == len(contacts) and steps + dropped + 10 == captured and fps > 0 and latency > 0
    records = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    assert len(records) == steps == len(list(out.glob("step_*.png")))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == steps and summary["dropped"] == dropped
    assert [r["step"] for r in records] == list(range(steps))
    assert all(r["frame"] >= 10 and r["latency_ms"] > 0 and r["nearest"] in ("none", "press") for r in records)
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames))  # newest frames only, never one twice, never back in time
    # the panels are real images of the frame size plus the info column, and the video holds every one
    panel = cv2.imread(str(out / "step_00000.png"))
    assert panel.shape[0] == 240 and panel.shape[1] == 2 * 320 + 260
    cap = cv2.VideoCapture(str(tmp_path / "panel.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == steps


def test_embedding_distance_and_nearest_reference_follow_the_press(tmp_path):
    contacts = [0.0] * 10 + [0.0] * 3 + [1.0] * 6
    clip = write_clip(tmp_path / "c.avi", contacts)
    torch.manual_seed(0)
    refs = tmp_path / "refs"
    for label, c in (("none", 0.0), ("press", 1.0)):
        (refs / label).mkdir(parents=True)
        Image.fromarray(gel_frame(c, seed=50)).save(refs / label / "a.png")
    touch = TactileEncoder(TouchEncoder(TINY).eval(), sensor="digit")
    records, summary = run_stream(touch, str(clip), references=refs, source_fps=100, threshold=1e-4)  # a random model: small distances
    assert summary.steps == len(records) and summary.captured == len(contacts)
    # with a fast source frames are dropped; what was embedded must follow the press
    by_frame = {r["frame"]: r for r in records}
    assert records[-1]["frame"] == len(contacts) - 1  # the last frame is always taken
    last = records[-1]
    assert last["nearest"] == "press" and last["contact"]
    quiet = [r for r in records if r["frame"] < 13]
    assert all(r["contact_distance"] < last["contact_distance"] / 10 and not r["contact"] for r in quiet)
    assert set(by_frame) <= set(range(10, len(contacts)))


class _SlowCapture:
    """A stand-in camera: ``n`` frames, one every ``period`` s."""

    def __init__(self, n, period):
        self.n, self.period, self.i = n, period, 0

    def read(self):
        if self.i >= self.n:
            return False, None
        time.sleep(self.period)
        self.i += 1
        return True, np.full((4, 4, 3), self.i, np.uint8)

    def get(self, prop):
        return 0

    def release(self):
        pass


def test_a_slow_consumer_gets_only_the_newest_frames_and_drops_are_counted():
    grab = LatestFrame(_SlowCapture(30, 0.002), is_file=False)
    seen = []
    while (got := grab.get()) is not None:
        seen.append(got[0])
        time.sleep(0.02)  # a model ten times slower than the camera
    grab.close()
    assert grab.captured == 30 and seen[-1] == 29
    assert grab.dropped == 30 - len(seen) > 0 and seen == sorted(set(seen))


class _BrokenCapture(_SlowCapture):
    def read(self):
        if self.i == 3:
            raise OSError("USB disconnected")
        return super().read()


def test_a_failing_camera_is_reported_not_waited_for():
    grab = LatestFrame(_BrokenCapture(10, 0.0), is_file=False)
    with pytest.raises(RuntimeError, match="reading the source failed after 3 frames: USB disconnected"):
        while grab.get() is not None:
            pass
    grab.close()


def test_bad_sources_and_references(tmp_path, ckpt, capsys):
    with pytest.raises(FileNotFoundError, match="--source .*nope.mp4: no such video file"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "junk.mp4").write_text("not a video")
    with pytest.raises(ValueError, match="OpenCV cannot open it"):
        open_source(str(tmp_path / "junk.mp4"))
    clip = write_clip(tmp_path / "short.avi", [0.0] * 4)
    assert main(["stream", "--source", str(clip), "-c", str(ckpt), "--device", "cpu", "--out-dir",
                 str(tmp_path / "o")]) == 2
    assert "ended after 4 frames, before the 10 no-contact background frames" in capsys.readouterr().err
    (tmp_path / "refs" / "empty").mkdir(parents=True)
    assert main(["stream", "--source", str(clip), "-c", str(ckpt), "--device", "cpu", "--references",
                 str(tmp_path / "refs"), "--background-frames", "1"]) == 2
    assert "label folder 'empty' holds no" in capsys.readouterr().err


# -- AnyTouch 2: the encoder's own window (num_frames at frame_stride) and the background in the model input -------
def _decoded(path):
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    return frames


def test_stream_with_an_anytouch2_checkpoint_waits_for_its_window(tmp_path, capsys):
    enc = tiny_encoder(4)  # 4 frames, 2 apart: a window spans 7 captured frames
    ckpt = export_safetensors(enc, tmp_path / "at2.safetensors")
    contacts = [0.0] * 8 + [1.0] * 8
    clip = write_clip(tmp_path / "digit.avi", contacts)
    Image.fromarray(gel_frame(0.0, seed=123)).save(tmp_path / "bg.png")
    out = tmp_path / "out"
    assert main(["stream", "--source", str(clip), "--sensor", "dm", "-c", str(ckpt), "--device", "cpu",
                 "--background", str(tmp_path / "bg.png"), "--out-dir", str(out), "--source-fps", "100"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.search(r"^(\d+) steps .* dropped (\d+) of (\d+) captured frames; (\d+) frame\(s\) filled the window first$",
                  line)
    assert m, line
    steps, dropped, captured, warmup = map(int, m.groups())
    assert captured == len(contacts) and steps + dropped + warmup == captured and steps > 0
    records = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    assert records[0]["frame"] >= 6 and warmup >= 1  # nothing embedded before frame 6 (the 7th) was captured
    assert json.loads((out / "summary.json").read_text())["warmup"] == warmup

    # each step embeds the last 7 captured frames (the policy module takes every 2nd: tests/test_policy.py), with
    # the background subtracted in the model input for AnyTouch 2 and, by default, not for AnyTouch 1
    frames = torch.from_numpy(np.stack(_decoded(clip)))
    bg = torch.from_numpy(np.array(Image.open(tmp_path / "bg.png")))
    for subtract in (None, False):
        touch = _Spy(enc, sensor="dm")
        records, summary = run_stream(touch, str(clip), background=tmp_path / "bg.png", source_fps=40,
                                      subtract_background=subtract)
        assert len(touch.calls) == 1 + len(records) and records[0]["frame"] >= 6 and summary.warmup >= 1
        assert torch.equal(touch.calls[0][0], bg[None])  # the background's own embedding
        for r, (x, b) in zip(records, touch.calls[1:]):
            assert torch.equal(x[0], frames[r["frame"] - 6:r["frame"] + 1])
            assert torch.equal(b, bg) if subtract is None else b is None


class _Spy(TactileEncoder):
    """Records what the stream feeds the policy module."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def forward(self, frames, sensor=None, background=None):
        self.calls.append((frames.cpu(), None if background is None else background.cpu()))
        return super().forward(frames, sensor, background)
