#!/usr/bin/env bash
# Quick start 1: install everything, precompute the embedded offline default, open the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/cache/numba}"
.venv/bin/alignscope extract          # real models on bundled data; cache hits after the first run
exec .venv/bin/alignscope dashboard --port "${PORT:-8501}"
