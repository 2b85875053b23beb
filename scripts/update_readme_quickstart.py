"""Show a quick-start run in the README: its report block, its summary and its pictures.

    anytouch quickstart --out runs/qs && python scripts/update_readme_quickstart.py runs/qs

Replaces the block between the quick-start result markers of README.md by the run's ``results.md`` (which the run
wrote from its ``summary.json``; both must agree, so the README shows what a run printed, never hand-edited
numbers), copies ``summary.json`` to ``docs/quickstart_summary.json`` (a test checks the README block against it) and
the pictures the README shows to ``docs/img/``. Only a full default run is accepted (``anytouch quickstart`` without
``--scale`` / ``--preset``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from anytouch.quickstart import SETTINGS  # noqa: E402  (the repository's package, not an installed one)
from anytouch.quickstart_report import block_files, readme_block, replace_block  # noqa: E402

PICTURES = ("mae_grid.png", "tsne_stage2.png", "curves_stage1.png", "curves_stage2.png")


def update(run: Path, repo: Path = REPO) -> None:
    """Put run folder ``run`` into ``repo``'s README.md, docs/quickstart_summary.json and docs/img/."""
    summary_file, results_file = run / "summary.json", run / "results.md"
    for f in (summary_file, results_file, *(run / "pictures" / p for p in PICTURES)):
        if not f.is_file():
            raise SystemExit(f"{f} is missing: is {run} the output folder of a finished `anytouch quickstart`?")
    summary = json.loads(summary_file.read_text())
    if summary.get("settings") != asdict(SETTINGS["tiny"]):
        raise SystemExit(f"{summary_file}: settings {summary.get('settings')} are not the default quick start's "
                         f"{asdict(SETTINGS['tiny'])}; the README shows a full `anytouch quickstart` run")
    block = readme_block(summary)
    if results_file.read_text() != block:
        raise SystemExit(f"{results_file} differs from the block this code makes of {summary_file}: the run used "
                         "another version of anytouch/quickstart_report.py; run the quick start again")
    readme, kept_summary = block_files(repo)
    readme.write_text(replace_block(readme.read_text(), block, str(readme)))
    shutil.copyfile(summary_file, kept_summary)
    for p in PICTURES:
        shutil.copyfile(run / "pictures" / p, repo / "docs" / "img" / p)
    print(f"{readme}: quick-start block from {run}; {kept_summary} and docs/img/ ({', '.join(PICTURES)}) updated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="output folder of `anytouch quickstart`")
    update(ap.parse_args().run)


if __name__ == "__main__":
    main()
