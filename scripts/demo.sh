#!/usr/bin/env bash
# Sets up .venv/ and runs the offline demo: the full asset graph on a sample served from
# 127.0.0.1, then a search. Output lands in .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/clip-assets demo "$@"
