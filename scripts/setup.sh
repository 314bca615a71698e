#!/usr/bin/env bash
# Creates .venv/ in the repository root and installs clip-assets with its dev tools.
# CLIP_ASSETS_EXTRAS names other extras instead (deploy/Dockerfile: k8s).
set -euo pipefail
EXTRAS="${CLIP_ASSETS_EXTRAS:-dev}"
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check 'setuptools<81' wheel
# torch first, pinned: unpinned, pip may pull a multi-GB build from the registry.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt torch torchvision
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[${EXTRAS}]"
