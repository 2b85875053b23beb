#!/usr/bin/env bash
# AnyTouch stage 1 (MAE pre-training). Arguments are config overrides, e.g.
#   bash train_stage1.sh                                  # the paper recipe (configs/stage1.yaml) on all visible GPUs
#   bash train_stage1.sh model=tiny data=synthetic        # CPU smoke run on built-in data (~1-2 min)
#   bash train_stage1.sh run.resume=auto                  # continue the newest checkpoint in run.output_dir
# Processes: NGPU per node, NNODES nodes (see scripts/torchrun.sh).
set -euo pipefail
cd "$(dirname "$0")"
exec bash scripts/torchrun.sh -m anytouch.train.stage1 --config configs/stage1.yaml "$@"
