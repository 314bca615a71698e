"""The production weight path, pretrained="laion2b_s34b_b79k", loads unchanged from a
pre-populated Hugging Face cache with HF_HUB_OFFLINE=1, on the real ViT-B-32 architecture.

huggingface_hub reads HF_HOME and HF_HUB_OFFLINE into module constants at import, and this
test process has imported it already, so each load runs in a fresh interpreter with that
environment rather than under monkeypatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clip_assets.embed.checkpoint import hub_checkpoint
from clip_assets.offline.weights import install_pretrained_standin

HERE = Path(__file__).parent


def run_offline(hf_home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)  # would override HF_HOME's hub/ folder
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("hf-home")
    return home, install_pretrained_standin(home, seed=0)


def test_standin_sits_where_open_clip_looks(hf_home):
    home, snapshot = hf_home
    repo = home / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    commit = (repo / "refs" / "main").read_text()
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert snapshot == repo / "snapshots" / commit / "open_clip_model.safetensors"
    assert snapshot.resolve().parent == repo / "blobs"


def test_default_spec_loads_standin_offline_and_matches_the_saved_state(hf_home, jpegs, tmp_path):
    home, snapshot = hf_home
    images = []
    for i, data in enumerate(jpegs[:3]):
        images.append(tmp_path / f"{i}.jpg")
        images[-1].write_bytes(data)
    result = run_offline(home, str(HERE / "production_load.py"), str(snapshot), *map(str, images))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["offline"] is True
    identity = report["identity"]
    assert identity["model"] == "ViT-B-32" and identity["pretrained"] == "laion2b_s34b_b79k"
    assert Path(identity["weights_file"]) == snapshot
    assert identity["weights_sha256"] == hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert identity["device"] == "cpu"
    # auto precision: bf16 only if measured on these weights to agree with fp32 (calibrate.py).
    if identity["precision"] == "bf16":
        assert identity["bf16_vs_fp32_min_cosine"] >= 0.9995
    assert report["state_equal"] is True
    assert report["max_abs_diff_same_input"] == 0.0
    # Our decoding, preprocessing and precision vs open_clip's preprocess + fp32 encode_image.
    assert min(report["cosine_vs_open_clip"]) >= 0.999


def test_offline_without_cache_fails_naming_the_tag(tmp_path):
    code = "from clip_assets.embed import ClipEncoder; ClipEncoder.load()"
    result = run_offline(tmp_path / "empty-hf-home", "-c", code)
    assert result.returncode != 0
    assert "WeightsError" in result.stderr and "laion2b_s34b_b79k" in result.stderr


@pytest.mark.parametrize(
    ("model", "tag", "expected"),
    [
        (
            "ViT-B-32",
            "laion2b_s34b_b79k",
            (
                "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"],
            ),
        ),
        # A registry entry naming its own file: its safetensors twin is asked for first.
        (
            "ViTamin-S",
            "datacomp1b",
            ("jienengchen/ViTamin-S", ["pytorch_model.safetensors", "pytorch_model.bin"]),
        ),
        ("ViT-B-32", "no_such_tag", None),
    ],
)
def test_checkpoint_names_come_from_open_clips_registry(model, tag, expected):
    assert hub_checkpoint(model, tag) == expected
