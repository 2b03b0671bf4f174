#!/usr/bin/env bash
# Set everything up, then run the main job (the whole study) on its built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/nnlut run --out "${NNLUT_OUT:-results}" "$@"
