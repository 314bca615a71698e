#!/usr/bin/env bash
# Prepares .whl/ for benchmarks/gpu_check.sh on the lent GPU machine, which has no network.
#
# Run here, in the repository root, before the device run:
#     bash benchmarks/gpu_wheels.sh
# Writes: .whl/*.whl, the packages our embeddings stage needs that the machine's python3
# (3.12, with torch, torchvision, timm, pillow, pyarrow, numpy, huggingface_hub, safetensors,
# regex, tqdm) lacks: open_clip_torch and its pure-Python needs ftfy and wcwidth, one
# version each, downloaded as the device README says (--no-deps, Python 3.12, manylinux
# platforms); and .whl/baseline/clip_assets, the package as of BASELINE (default e437548,
# the embeddings stage before its GPU fixes), which gpu_check.py --compare runs beside the
# current code. .whl/ is git-ignored; the device run carries it (carry [".whl"]).
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"
PYTHON=${PYTHON:-$(if [[ -x .venv/bin/python ]]; then echo .venv/bin/python; else command -v python3; fi)}
BASELINE=${BASELINE:-e437548}
# Versions: the ones our venv runs (constraints.txt pins open_clip_torch).
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4)

rm -rf .whl
mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"

# Every dependency a wheel declares must be a wheel here or already on the machine.
present="torch torchvision timm pillow pyarrow numpy huggingface-hub safetensors regex tqdm"
for wheel in .whl/*.whl; do
    for need in $(unzip -p "$wheel" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' |
        sed -E 's/^Requires-Dist: *([A-Za-z0-9_.-]+).*/\1/' | tr 'A-Z_.' 'a-z--'); do
        have=$(ls .whl | tr 'A-Z_.' 'a-z--' | grep -c "^${need}-" || true)
        if [[ $have -eq 0 && " $present " != *" $need "* ]]; then
            echo "missing for $(basename "$wheel"): $need" >&2
            exit 1
        fi
    done
done

mkdir -p .whl/baseline
git archive "$BASELINE" clip_assets | tar -x -C .whl/baseline
git rev-parse "$BASELINE" > .whl/baseline/COMMIT
ls -l .whl
du -sh .whl
