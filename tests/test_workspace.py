"""The code location loads as users load it: `dagster definitions validate` and `dagster dev`
(which also shows a new registry entry built with no person in the loop)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter
from stand_ins.dagster_dev import dagster_dev, free_port, wait_for

from clip_assets.graph.automation import INDEX_BUILD_TAG
from clip_assets.graph.registry_sensor import REGISTRY_SENSOR_NAME
from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, image
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


@pytest.mark.timeout(900)
def test_dagster_dev_shows_the_graph_and_a_new_registry_entry_builds_by_itself(
    env: dict[str, str], tmp_path: Path, tiny_model_name: str
) -> None:
    """One ``dagster dev`` (the suite starts it once): the UI's graph, then a new registry
    entry and nothing else. The registry sensor has the code location reloaded, the new
    dataset's discovery sensor adds and runs its partitions, and the rebuild automation builds
    its index, id mapping and release in one run after the wave. Steps run in their runs'
    processes (``CLIP_ASSETS_EXECUTOR=in_process``): the path under test is the daemon's."""
    port = free_port()
    env = {
        **env,
        "CLIP_ASSETS_MODEL": tiny_model_name,
        "CLIP_ASSETS_PRETRAINED": "none",
        "CLIP_ASSETS_WEBSERVER": f"http://127.0.0.1:{port}",
        "CLIP_ASSETS_EXECUTOR": "in_process",
    }
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(4)}
    home = env["DAGSTER_HOME"]
    with (
        ImageServer(routes) as server,
        (tmp_path / "dagster-dev.log").open("wb") as log,
        # The instance first: its storage exists before dagster dev opens it.
        DagsterInstance.from_config(home) as instance,
        dagster_dev(env, port, log),
    ):
        query = "{ assetNodes { assetKey { path } isPartitioned pools } }"
        nodes = wait_for(lambda: _asset_nodes(port, query), 240, "dagster dev to answer", 2)
        ours = {
            tuple(n["assetKey"]["path"]): n
            for n in nodes
            if n["assetKey"]["path"][0] == "local_demo"
        }
        assert {path[1] for path in ours} == STAGES
        partitioned = {path[1] for path, node in ours.items() if node["isPartitioned"]}
        assert partitioned == {"metadata", "images", "embeddings"}
        assert ours[("local_demo", "embeddings")]["pools"] == ["gpu"]

        rows = [SampleRow(url=server.url(path), text=path) for path in sorted(routes)]
        write_datacomp_shard(tmp_path / "fresh_source", rows)
        # The location is up once its registry sensor has ticked.
        wait_for(lambda: _ticked(instance), 240, "the registry sensor's first tick", 2)
        with Path(env["CLIP_ASSETS_DATASETS"]).open("a") as registry:
            registry.write(
                f"  - name: fresh\n    source: {tmp_path / 'fresh_source'}\n"
                "    rows_per_partition: 2\n    allowed_hosts: [127.0.0.1]\n"
            )
        release = AssetKey(["fresh", "hf_release"])
        wait_for(
            lambda: instance.get_latest_materialization_event(release),
            600,
            "the new dataset's release",
            2,
        )
        builds = instance.get_runs(RunsFilter(tags={INDEX_BUILD_TAG: "fresh"}))
    assert len(builds) == 1
    assert {key.path[-1] for key in builds[0].asset_selection} == {
        "faiss_index",
        "id_mapping",
        "hf_release",
    }
    assert (tmp_path / "data" / "fresh" / "release" / "README.md").exists()
    assert len(list((tmp_path / "data" / "fresh" / "embeddings").glob("*.parquet"))) == 2


def _asset_nodes(port: int, query: str) -> list[dict] | None:
    try:
        return _graphql(port, query)["data"]["assetNodes"] or None
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _ticked(instance: DagsterInstance) -> bool:
    states = instance.all_instigator_state()
    return any(state.name == REGISTRY_SENSOR_NAME for state in states)


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
