#!/usr/bin/env bash
# Sets up .venv/ and runs the whole test suite (ruff, then pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The search page is tested in headless Chromium (Debian's package).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed"
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
