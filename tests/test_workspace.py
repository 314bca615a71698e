"""The code location loads as users load it: `dagster definitions validate` and `dagster dev`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from stand_ins.dagster_dev import dagster_dev, free_port

from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site

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
    port = free_port()
    with dagster_dev(env, port):
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


def test_cli_discover_then_dagster_materializes_partitions_in_run_processes(
    env: dict[str, str], tmp_path: Path, tiny_model_name: str
) -> None:
    """What a user does from a shell: discover partitions, then materialise through the
    dagster CLI, which runs steps in their own processes as `dagster dev` would."""
    site = sample_site(good=6, broken=False)
    with ImageServer(site.routes) as server:
        write_datacomp_shard(tmp_path / "source", site.rows(server))
        registry = Path(env["CLIP_ASSETS_DATASETS"])
        registry.write_text(
            f"datasets:\n  - name: local_demo\n    source: {tmp_path / 'source'}\n"
            "    rows_per_partition: 4\n    allowed_hosts: [127.0.0.1]\n"
        )
        env = {**env, "CLIP_ASSETS_MODEL": tiny_model_name, "CLIP_ASSETS_PRETRAINED": "none"}
        cli = Path(sys.executable).parent / "clip-assets"
        discovered = subprocess.run(
            [str(cli), "discover", "--dataset", "local_demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert discovered.returncode == 0, discovered.stderr
        assert "+2 -0 partitions" in discovered.stdout
        key = sorted(p.name for p in (tmp_path / "source").glob("*.parquet"))[0][:12] + "-0001"
        run = subprocess.run(
            [
                str(DAGSTER),
                "asset",
                "materialize",
                "-m",
                "clip_assets.definitions",
                "--select",
                "local_demo/metadata,local_demo/images,local_demo/embeddings",
                "--partition",
                key,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    embeddings = pq.read_table(tmp_path / "data" / "local_demo" / "embeddings" / f"{key}.parquet")
    assert embeddings.num_rows == 2
