#!/usr/bin/env bash
# Creates .venv/ in the repository root and installs clip-assets with its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check 'setuptools<81' wheel
# torch first, pinned: unpinned, pip may pull a multi-GB build from the registry.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt torch torchvision
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
