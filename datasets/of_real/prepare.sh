#!/usr/bin/env bash
# Prepare ObjectFolder Real (Gao et al., CVPR 2023) (see README.md). Usage: prepare.sh DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare index --name of_real --root "$1" "${@:2}"
