"""Observing a dataset's source: a version per listing of contents, unreadable files named."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, Definitions, define_asset_job

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.factory import dataset_definitions
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.registry import DatasetSpec
from resources.hub import HubResource
from resources.storage import LocalStorage


def _observe(spec: DatasetSpec, root: Path, instance: DagsterInstance) -> dict:
    graph = DatasetGraph(spec)
    [source] = [a for a in dataset_definitions(graph).assets if a.key == graph.key("source")]
    observing = Definitions(
        assets=[source],
        jobs=[define_asset_job("observe_source", selection=[source.key])],
        resources={"hub": HubResource(), "storage": LocalStorage(root=str(root))},
    )
    result = observing.resolve_job_def("observe_source").execute_in_process(instance=instance)
    [event] = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    observation = event.event_specific_data.asset_observation
    return {"version": observation.tags["dagster/data_version"], **observation.metadata}


def test_observation_versions_contents_and_names_unreadable_files(tmp_path: Path) -> None:
    rows = [SampleRow(url=f"http://127.0.0.1:9/{i}.jpg", text=f"t{i}") for i in range(5)]
    good = write_datacomp_shard(tmp_path / "source", rows)
    spec = DatasetSpec(name="observed", source=str(tmp_path / "source"))
    instance = DagsterInstance.ephemeral()
    first = _observe(spec, tmp_path / "data", instance)
    assert first["files"].value == 1 and first["unreadable_files"].value == 0
    os.utime(good, (1, 1))  # a touch changes no byte
    assert _observe(spec, tmp_path / "data", instance)["version"] == first["version"]
    (tmp_path / "source" / "broken.parquet").write_bytes(b"PAR1 not really")
    broken = _observe(spec, tmp_path / "data", instance)
    assert broken["unreadable_files"].value == 1 and broken["version"] != first["version"]
    assert "broken.parquet" in broken["unreadable"].value
