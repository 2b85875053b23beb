#!/usr/bin/env bash
# AnyTouch linear probe (docs/original/probes.md#protocol): Feel grasp success (GelSight A/B pairs). Arguments are
# config overrides, e.g.   bash run_probe_Feel.sh probe.checkpoint=log/checkpoint.pth data.root=tactile_datasets
#   bash run_probe_Feel.sh probe.checkpoint=... probe.protocol=cached     # cached features + lr x wd grid (fast)
#   bash run_probe_Feel.sh data=synthetic probe.checkpoint=random:tiny \
#     probe.epochs=2 probe.batch_size=16                                 # CPU smoke run on built-in data
# probe.checkpoint: our checkpoint, an original AnyTouch stage-1/stage-2 file or a CLIP file/folder (the architecture
# is read from it). probe.protocol: official (default, the original's loop) | cached | both. probe.batch_size is the
# effective batch, so the numbers do not depend on NGPU (processes; default: the visible GPUs, or 1 CPU process).
# Results: <run.output_dir>/results.{json,md}, printed at the end. Paths are relative to this folder.
set -euo pipefail
cd "$(dirname "$0")"
exec bash scripts/torchrun.sh -m anytouch.probe --config configs/probe_feel.yaml "$@"
