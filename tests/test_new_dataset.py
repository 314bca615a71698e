"""A new registry entry, and nothing else: under ``dagster dev`` the registry sensor has the code
location reloaded, the new dataset's discovery sensor adds and runs its partitions, and the
rebuild automation builds its index, id mapping and release in one run after the wave.

Steps run in their runs' processes (``CLIP_ASSETS_EXECUTOR=in_process``): the path under test is
the daemon's (sensors, reload, automation), and a process per step would only add start-ups.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter
from stand_ins.dagster_dev import REPO, dagster_dev, free_port, wait_for

from clip_assets.graph.automation import INDEX_BUILD_TAG
from clip_assets.graph.registry_sensor import REGISTRY_SENSOR_NAME
from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, image


@pytest.mark.timeout(900)
def test_a_new_registry_entry_is_loaded_discovered_and_indexed(
    tmp_path: Path, tiny_model_name: str
) -> None:
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(4)}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    registry = tmp_path / "datasets.yaml"
    registry.write_text("datasets: []\n")
    port = free_port()
    env = {
        **os.environ,
        "CLIP_ASSETS_DATASETS": str(registry),
        "CLIP_ASSETS_ROOT": str(tmp_path / "data"),
        "CLIP_ASSETS_MODEL": tiny_model_name,
        "CLIP_ASSETS_PRETRAINED": "none",
        "CLIP_ASSETS_WEBSERVER": f"http://127.0.0.1:{port}",
        "CLIP_ASSETS_EXECUTOR": "in_process",
        "DAGSTER_HOME": str(home),
    }
    with (
        ImageServer(routes) as server,
        (tmp_path / "dagster-dev.log").open("wb") as log,
        dagster_dev(env, port, log),
        DagsterInstance.from_config(str(home)) as instance,
    ):
        rows = [SampleRow(url=server.url(path), text=path) for path in sorted(routes)]
        write_datacomp_shard(tmp_path / "source", rows)
        # The location is up once its registry sensor has ticked.
        wait_for(lambda: _ticked(instance), 240, "the code location to load", every=2)
        registry.write_text(
            f"datasets:\n  - name: fresh\n    source: {tmp_path / 'source'}\n"
            "    rows_per_partition: 2\n    allowed_hosts: [127.0.0.1]\n"
        )
        release = AssetKey(["fresh", "hf_release"])
        wait_for(
            lambda: instance.get_latest_materialization_event(release),
            600,
            "the new dataset's release",
            every=2,
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


def _ticked(instance: DagsterInstance) -> bool:
    states = instance.all_instigator_state()
    return any(state.name == REGISTRY_SENSOR_NAME for state in states)
