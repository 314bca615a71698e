"""The code location loads as users load it: `dagster definitions validate` and `dagster dev`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"
STAGES = {"source", "metadata", "images", "embeddings", "faiss_index", "id_mapping", "hf_release"}


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "source").mkdir()
    registry = tmp_path / "datasets.yaml"
    registry.write_text(f"datasets:\n  - name: local_demo\n    source: {tmp_path / 'source'}\n")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    return {
        **os.environ,
        "CLIP_ASSETS_DATASETS": str(registry),
        "CLIP_ASSETS_ROOT": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
    }


def test_definitions_validate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_dagster_dev_shows_the_graph_with_partitions(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Default signal handlers and a session of its own, so the whole tree stops by PID.
    process = subprocess.Popen(
        [str(DAGSTER), "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        query = "{ assetNodes { assetKey { path } isPartitioned pools } }"
        deadline = time.monotonic() + 150
        nodes = None
        while time.monotonic() < deadline:
            try:
                nodes = _graphql(port, query)["data"]["assetNodes"]
                if nodes:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(2)
        assert nodes, "dagster dev did not answer"
        ours = {
            tuple(n["assetKey"]["path"]): n
            for n in nodes
            if n["assetKey"]["path"][0] == "local_demo"
        }
        assert {path[1] for path in ours} == STAGES
        partitioned = {path[1] for path, node in ours.items() if node["isPartitioned"]}
        assert partitioned == {"metadata", "images", "embeddings"}
        assert ours[("local_demo", "embeddings")]["pools"] == ["gpu"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
