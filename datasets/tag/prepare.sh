#!/usr/bin/env bash
# Prepare Touch and Go (TAG) (see README.md). Usage: prepare.sh RAW_DIR DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare tag --raw "$1" --root "$2" "${@:3}"
