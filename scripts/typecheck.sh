#!/usr/bin/env bash
# mypy on alignscope.core. mypy cannot follow setuptools' package-dir mapping (alignscope.core -> core/),
# so it reads the package through a folder of symlinks laid out as the installed package is.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck/alignscope
rm -rf build/typecheck
mkdir -p "$tree"
cp alignscope/__init__.py "$tree/__init__.py"
ln -s "$PWD/core" "$tree/core"
ln -s "$PWD/dashboard" "$tree/dashboard"
MYPYPATH=build/typecheck exec "${PYTHON:-.venv/bin/python}" -m mypy -p alignscope.core "$@"
