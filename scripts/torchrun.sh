#!/usr/bin/env bash
# Shared launcher of the top-level scripts: torchrun with NGPU processes per node (default: the visible GPUs, or one
# CPU process) on one node, or several nodes when NNODES > 1 (then NODE_RANK, MASTER_ADDR and optionally MASTER_PORT
# must be set on every node). Arguments: what follows `torchrun ... ` (e.g. -m anytouch.train.stage1 --config ...).
# PYTHON selects the interpreter (default: python).
set -euo pipefail
PYTHON=${PYTHON:-python}
NGPU=${NGPU:-$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # data workers use the other cores; oversubscribed OpenMP crawls
if [ "${NNODES:-1}" -gt 1 ]; then
  : "${NODE_RANK:?set NODE_RANK (0..NNODES-1) on every node}" "${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}"
  LAUNCH=(--nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="${MASTER_PORT:-29500}")
else
  LAUNCH=(--standalone --nnodes=1)
fi
exec "$PYTHON" -m torch.distributed.run "${LAUNCH[@]}" --nproc_per_node="$NGPU" "$@"
