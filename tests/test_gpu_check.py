"""benchmarks/gpu_check.py on the CPU: every path that needs no GPU runs and reports its fields.

The driver runs as a child process (it sets HF_HOME and HF_HUB_OFFLINE for itself) on a tiny
model and a handful of stored images, with ``--compare`` against a copy of this package, so
the before/after plumbing the device run relies on is exercised here too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "benchmarks" / "gpu_check.py"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OUT", None)
    return subprocess.run(
        [sys.executable, str(DRIVER), *args], capture_output=True, text=True, env=env, timeout=240
    )


def test_cpu_run_reports_every_field_and_compares_with_a_baseline(tmp_path):
    baseline = tmp_path / "baseline"
    shutil.copytree(REPO / "clip_assets", baseline / "clip_assets")
    out = tmp_path / "result.json"
    args = ["--device", "cpu", "--model", "tiny", "--n", "8", "--distinct", "2"]
    args += ["--batch-sizes", "4", "--precisions", "fp32", "--sample", "4", "--repeats", "1"]
    args += ["--compare", str(baseline), "--work", str(tmp_path / "work"), "--out", str(out)]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result["images"]["rows"] == 8 and result["images"]["shortest_sides"] == [256]
    runs = {(r["path"], r["precision"], r["batch_size"]): r for r in result["runs"]}
    assert set(runs) == {("pillow", "fp32", 4), ("device", "fp32", 4)}
    for run in runs.values():
        assert run["rows"] == 8 and run["images_per_s"] > 0
        assert run["cosine_min"] >= 0.999  # the CPU fp32 Pillow path is the reference
        assert run["gpu_utilisation"]["samples"] == 0  # no GPU, nothing sampled
    assert runs[("pillow", "fp32", 4)]["implementation"].startswith("Pillow")
    assert runs[("device", "fp32", 4)]["implementation"].startswith("torchvision")
    phases = {p["path"]: p for p in result["phases"]}
    assert set(phases) == {"pillow", "device"}
    for p in phases.values():
        for key in ("read_ms_per_1k", "decode_ms_per_1k", "resize_ms_per_1k"):
            assert p[key] > 0
    assert result["model_ms_per_1k"]["fp32"] > 0
    assert phases["device"]["resize_ops_per_batch"] > 0
    assert result["syncs"] is None  # counted on a GPU only

    old = result["baseline"]
    assert old["environment"]["package"] == str(baseline / "clip_assets")
    assert [(r["path"], r["batch_size"]) for r in old["runs"]] == [("pillow", 4)]
    assert set(result["headline"]["speedup_vs_baseline"]) == {"pillow fp32 b4"}
    assert result["headline"]["all_cosines_at_least_0.999"] is True


def test_cuda_without_a_gpu_fails_with_a_clear_message(tmp_path):
    done = _run(["--device", "cuda", "--work", str(tmp_path)], tmp_path)
    if done.returncode == 0:  # a GPU is present: nothing to check here
        return
    assert "sees no GPU" in done.stderr and "--device cpu" in done.stderr
