"""What ``anytouch quickstart`` prints and writes: the results table, the report, and the README block built from a
run's ``summary.json``, so that the README shows exactly what a run produced (``scripts/update_readme_quickstart.py``
puts it there) instead of numbers copied by hand.
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple

__all__ = ["PROBES", "results_table", "report_text", "readme_block", "platform_info", "replace_block",
           "current_block", "block_files", "README_MARKERS"]

# probe config file -> its tasks (the order of the paper's table)
PROBES = (("probe_tag", ("tag_material", "tag_roughness", "tag_hardness")), ("probe_feel", ("feel",)),
          ("probe_of1", ("of1",)), ("probe_of2", ("of2",)))
TASKS = tuple(t for _, ts in PROBES for t in ts)

README_MARKERS = ("<!-- quickstart-results:begin (scripts/update_readme_quickstart.py writes this block) -->",
                  "<!-- quickstart-results:end -->")


def results_table(acc: Mapping[str, Mapping[str, float]], tasks: Sequence[str] = TASKS) -> str:
    """Markdown table: one row per probe task (in ``tasks`` order), one column per encoder."""
    names = list(acc)
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(f"{acc[n][t]:.1f}" if t in acc[n] else "-" for n in names) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux: platform's answer is the best there is
        pass
    return platform.processor() or platform.machine()


def platform_info() -> Dict[str, object]:
    """What a CPU run's floating-point results depend on: the CPU model (kernels differ between vendors and
    instruction sets), torch's thread count (it changes how reductions are split) and the torch version."""
    import torch  # here: the report and README-block helpers stay usable without torch (scripts/)

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "system": platform.system()}


def report_text(summary: Mapping[str, object]) -> str:
    """The result part of the quick start's report (printed at the end of the run, and the README block), from the
    run's summary (``settings``, ``accuracy``, ``matching``, ``tsne``, ``times``)."""
    s, times = summary["settings"], summary["times"]
    matching = "\n".join(f"  {kind:5s}: head accuracy {m['accuracy']:.2f}, head AUC {m['auc']:.2f}, cosine AUC "
                         f"{m['cosine_auc']:.2f} ({m['pairs']} pairs)" for kind, m in summary["matching"].items())
    mixing = "\n".join(f"  {n}: same sensor {v['same_sensor']:.2f}, same material {v['same_label']:.2f}"
                       for n, v in summary["tsne"].items())
    minutes = times["total_s"] / 60
    return (f"AnyTouch quick start ({s['preset']} preset, synthetic data) finished in {minutes:.1f} min\n\n"
            f"Linear-probe test accuracy (%), best epoch (the paper's rule):\n\n"
            f"{results_table(summary['accuracy'])}\n\n"
            "Cross-sensor matching of the stage-2 model on held-out synthetic TacQuad pairs (chance 0.50):\n"
            f"{matching}\n\n"
            f"Do sensors share one space? 10-NN agreement over 5 sensors x {s['tsne_materials']} materials:\n{mixing}")


def readme_block(summary: Mapping[str, object]) -> str:
    """The README's quick-start result block: the report in a code fence and the machine it ran on."""
    p = summary["platform"]
    return ("```\n" + report_text(summary) + "\n```\n\n"
            f"Measured with `anytouch quickstart` on {p['cpu']} ({p['cores']} cores, torch threads: "
            f"{p['torch_threads']}), torch {p['torch']}, Python {p['python']}, {p['system']}.\n")


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with everything between the two :data:`README_MARKERS` lines replaced by ``block``."""
    begin, end = (re.escape(m) for m in README_MARKERS)
    found = list(re.finditer(f"{begin}\n.*?{end}", text, flags=re.S))
    if len(found) != 1:
        raise ValueError(f"{where}: expected one block between the lines {README_MARKERS[0]!r} and "
                         f"{README_MARKERS[1]!r}, found {len(found)}")
    m = found[0]
    return text[:m.start()] + f"{README_MARKERS[0]}\n{block}{README_MARKERS[1]}" + text[m.end():]


def current_block(text: str, where: str = "README.md") -> str:
    """The block between the :data:`README_MARKERS` lines of ``text``."""
    begin, end = (re.escape(m) for m in README_MARKERS)
    found = re.findall(f"{begin}\n(.*?){end}", text, flags=re.S)
    if len(found) != 1:
        raise ValueError(f"{where}: expected one block between the quick-start result markers, found {len(found)}")
    return found[0]


def block_files(repo: Path) -> Tuple[Path, Path]:
    """(README, the summary.json of the run the README block shows) of the repository at ``repo``."""
    return repo / "README.md", repo / "docs" / "quickstart_summary.json"
