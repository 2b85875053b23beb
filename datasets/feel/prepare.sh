#!/usr/bin/env bash
# Prepare The Feeling of Success (Calandra et al., CoRL 2017) - probe (see README.md). Usage: prepare.sh RAW_DIR DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare feel --raw "$1" --root "$2" "${@:3}"
