#!/usr/bin/env bash
# Quick start 2: install everything the tests need (Debian chromium for the browser tests included),
# check formatting, lint and types, and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the browser tests" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium
fi

echo "== ruff format --check, ruff check, mypy core" >&2
.venv/bin/ruff format --check .
.venv/bin/ruff check .
bash scripts/typecheck.sh

export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/cache/numba}"
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest "$@"
