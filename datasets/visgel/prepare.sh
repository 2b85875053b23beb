#!/usr/bin/env bash
# Prepare VisGel (Li et al., CVPR 2019) (see README.md). Usage: prepare.sh DATA_ROOT [options]
set -euo pipefail
exec python -m anytouch.data.prepare index --name visgel --root "$1" "${@:2}"
