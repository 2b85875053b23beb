#!/usr/bin/env bash
# Prepare YCB-Slide (Suresh et al., ICRA 2023) (see README.md). Usage: prepare.sh RAW_DIR DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare ycb_slide --raw "$1" --root "$2" "${@:3}"
