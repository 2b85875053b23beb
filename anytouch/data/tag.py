"""Touch and Go (TAG, Yang et al. NeurIPS 2022), pre-training part: spec 4.3 - 4.5.

Layout under ``<root>/TAG/``: touch ``dataset/<folder>/gelsight_frame/<image>``, camera
``dataset/<folder>/video_frame/<image>``, image names ``%010d.jpg``. Sensor id 0 (GelSight).

* Stage 1 and cross kinds read ``TAG/label.txt`` (lines ``folder/image,label``), every entry, so TAG test-split
  frames enter pre-training as in the original (spec 7 quirk 19).
* Stage 2 reads ``contact_text_tag_notest.csv`` (``<root>/`` first, then ``TAG/``; columns ``folder, image_name,
  text_id, test_flag``); text ``<text_dir>/tag_<text_id>.pt`` except on rows with ``test_flag == 1``, whose text is
  withheld (touch and vision still used).
"""
from __future__ import annotations

import os

from .base import FrameFormat, TouchDataset, parse_int, read_rows
from .io import DataError

FORMAT = FrameFormat(r"(\d{10})\.jpg", "{:010d}.jpg")


class TouchAndGo(TouchDataset):
    """TAG pre-training frames with camera image and (non-test) text in stage 2."""

    source = "tag"
    default_dirs = ("TAG",)
    has_text = True

    def _touch(self, folder: str, image: str) -> str:
        return os.path.join(self.dir, "dataset", folder, "gelsight_frame", image)

    def scan(self) -> None:
        if self.multimodal:
            self._scan_text_index()
            return
        index = self.find_file([os.path.join(self.dir, "label.txt")], "index file label.txt")
        for lineno, row in read_rows(index, min_cols=1):
            folder, _, image = row[0].replace("\\", "/").rpartition("/")
            if not folder or not image:
                raise DataError(f"{index}:{lineno}: entry {row[0]!r}; expected 'folder/image,label'", index)
            found = self.find_clip([self._touch(folder, image)], FORMAT, f"{index}:{lineno}")
            if found:
                self.add(*found, sensor=0)

    def _scan_text_index(self) -> None:
        name = "contact_text_tag_notest.csv"
        index = self.find_file([os.path.join(self.root, name), os.path.join(self.dir, name)], f"stage-2 index {name}")
        for lineno, row in read_rows(index, min_cols=4):
            folder, image = row[0], row[1]
            text_id = parse_int(row[2], index, lineno, "3 (text_id)")
            test_flag = parse_int(row[3], index, lineno, "4 (test_flag)")
            found = self.find_clip([self._touch(folder, image)], FORMAT, f"{index}:{lineno}")
            if not found:
                continue
            vision = os.path.join(self.dir, "dataset", folder, "video_frame", image)
            if not self.files.exists(vision):
                self.note("vision frame missing", vision)
                vision = None
            text = None if test_flag == 1 else self.text_file(f"tag_{text_id}.pt")
            self.add(*found, sensor=0, vision=vision, text=text)

