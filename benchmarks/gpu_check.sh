#!/usr/bin/env bash
# The GPU check as one prepared command for the lent device machine (benchmarks/README.md,
# "GPU check"). Needs .whl/ from benchmarks/gpu_wheels.sh, carried with the run.
#
# Installs the carried wheels into /tmp/site exactly as the device README says, prints the
# card as found, then runs gpu_check.py on cuda (with --compare against .whl/baseline when it
# is there), writing gpu_check.json and gpu_check.log to $OUT. Extra arguments go to
# gpu_check.py (e.g. --device cpu --n 32 --model tiny to try it without a GPU). Sized to end
# in about 3 minutes on an H200; the timeout below stops it well inside an 8-minute call.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "gpu_check.sh: no wheels in .whl/; run 'bash benchmarks/gpu_wheels.sh' first and" \
        "carry .whl with the run" >&2
    exit 2
fi
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
"$PYTHON" -c "import open_clip, ftfy, torch, torchvision; print('open_clip', open_clip.__version__,
'torch', torch.__version__, 'torchvision', torchvision.__version__)" || {
    echo "gpu_check.sh: the carried wheels do not import here; rerun gpu_wheels.sh" >&2
    exit 2
}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu,clocks.sm,clocks.max.sm \
        --format=csv || true
fi
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
compare=()
if [[ -d .whl/baseline/clip_assets ]]; then
    compare=(--compare .whl/baseline)
fi
timeout "${GPU_CHECK_TIMEOUT_S:-400}" "$PYTHON" benchmarks/gpu_check.py --device cuda \
    "${compare[@]}" --out "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.log"
