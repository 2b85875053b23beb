#!/usr/bin/env bash
# Prepare Cloth (Yuan et al., ICRA 2018, "yuan18") (see README.md). Usage: prepare.sh RAW_DIR DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare cloth --raw "$1" --root "$2" "${@:3}"
