#!/usr/bin/env bash
# Prepare Octopi / PhysiCLeAR (Yu et al., RSS 2024) (see README.md). Usage: prepare.sh RAW_DIR DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare octopi --raw "$1" --root "$2" "${@:3}"
