"""Pokes: a tiny example source (DIGIT pokes, one folder of ``%03d.png`` frames per recording, ``pokes/index.csv``
lists the contact frames). The whole dataset is this module: loader, synthetic twin, tree writer and preparation."""
import os

from anytouch.data.base import FrameFormat, TouchDataset, read_rows
from anytouch.data.extract import extract_video, find_files, write_rows
from anytouch.data.spec import DatasetSpec, SyntheticTwin, loader
from anytouch.data.synthetic_render import TAG_MATERIALS

FORMAT = FrameFormat(r"(\d{3})\.png", "{:03d}.png")


class Pokes(TouchDataset):
    """Pokes contact frames, sensor 1 (DIGIT)."""

    source = "pokes"
    default_dirs = ("pokes",)

    def scan(self) -> None:
        index = self.find_file([os.path.join(self.dir, "index.csv")], "index file index.csv")
        for lineno, row in read_rows(index):
            found = self.find_clip([os.path.join(self.dir, row[0])], FORMAT, f"{index}:{lineno}")
            if found:
                self.add(*found, sensor=1)


def prepare(raw: str, root: str) -> dict:
    """``<raw>/<recording>.mp4`` -> ``pokes/<recording>/%03d.png``; every frame but the first is indexed."""
    rows, videos = [], find_files(raw, r".+\.mp4")
    for video in videos:
        rec = os.path.splitext(os.path.basename(video))[0]
        n = extract_video(video, os.path.join(root, "pokes", rec), FORMAT.template)
        rows += [[f"{rec}/{FORMAT.template.format(t)}"] for t in range(1, n)]
    write_rows(os.path.join(root, "pokes", "index.csv"), rows)
    return {"recordings": len(videos), "index_rows": len(rows)}


def write_tree(w) -> None:
    """A synthetic copy in the layout above."""
    rows = []
    for k in range(w.sequences):
        _, frames = w.sequence(w.rng("pokes", k), 1, TAG_MATERIALS[k % 20])
        for t, frame in enumerate(frames):
            w.image(f"pokes/rec{k}/{t:03d}.png", frame)
        rows += [[f"rec{k}/{t:03d}.png"] for t in range(1, w.frames)]
    w.lines("pokes/index.csv", rows)


SPEC = DatasetSpec("pokes", "pretrain", loader(Pokes), dirs=Pokes.default_dirs, sensors=(1,),
                   index_files=("pokes/index.csv",), synthetic=SyntheticTwin(materials=(2, 5)),
                   tree=("pokes", write_tree), prepare=prepare)
