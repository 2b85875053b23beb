#!/usr/bin/env bash
# One-table accelerator check (see scripts/gpu_check.py): training-step throughput and MFU, device augmentation,
# inference at batch 1 / 64 / 256, bf16-vs-fp32 features. Without CUDA it says so and exits 0.
#   bash scripts/gpu_check.sh                    # on a GPU box
#   bash scripts/gpu_check.sh --device cpu --tiny   # dry run of every code path on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python scripts/gpu_check.py "$@"
