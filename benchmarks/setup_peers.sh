#!/usr/bin/env bash
# Creates benchmarks/.peers-venv with the peer tools we benchmark against: img2dataset and
# clip-retrieval. They get their own venv because their pins clash with ours (pyarrow<16,
# open_clip<3, huggingface_hub<1). Idempotent: re-running only installs what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers-venv"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
# pip warns once per package about this machine's extra file:// indexes that lack it: noise.
pip() { "$venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }

# torch first, at exactly the versions that lie on this disk: left to itself pip would pull a
# multi-GB CUDA build of a newer release.
pip install --quiet torch==2.14.1 torchvision==0.29.1

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.14.1\ntorchvision==0.29.1\n' >"$constraints"

# clip-anytorch (pulled in by clip-retrieval) still imports pkg_resources.
pip install --quiet -c "$constraints" 'setuptools<81'
pip install --quiet -c "$constraints" img2dataset clip-retrieval

"$venv/bin/python" - <<'PY'
from importlib.metadata import version

for name in ("img2dataset", "clip-retrieval", "open_clip_torch", "torch", "torchvision",
             "pyarrow", "webdataset", "huggingface_hub"):
    print(f"{name}=={version(name)}")
PY
