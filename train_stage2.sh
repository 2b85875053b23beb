#!/usr/bin/env bash
# AnyTouch stage 2 (alignment + MAE + cross-sensor matching), from stage 1's last checkpoint. Arguments are config
# overrides, e.g.
#   bash train_stage2.sh model.clip_weights=/path/to/CLIP    # the paper recipe (configs/stage2.yaml) on all visible GPUs
#   bash train_stage2.sh model=tiny data=synthetic           # CPU smoke run after `bash train_stage1.sh model=tiny data=synthetic`
#   bash train_stage2.sh run.resume=auto                     # continue the newest checkpoint in run.output_dir
# The touch branch comes from model.stage1_checkpoint (default log/output_stage1/checkpoint-last.pth: ours, or an
# original stage-1 file). Processes: NGPU per node, NNODES nodes (see scripts/torchrun.sh).
set -euo pipefail
cd "$(dirname "$0")"
exec bash scripts/torchrun.sh -m anytouch.train.stage2 --config configs/stage2.yaml "$@"
