#!/usr/bin/env bash
# Quick start 1: install everything, extract what the first screen needs, open the dashboard; the rest of
# the embedded offline default is extracted in the background by the server (progress in the sidebar).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The first screen: the three digits CNNs on the digits dataset (~30 s the first time, cache hits after).
.venv/bin/alignscope extract --model digits-cnn-s0 --model digits-cnn-s1 --model digits-cnn-s2 --dataset digits
exec .venv/bin/alignscope dashboard --port "${PORT:-8501}" --prefetch-default
