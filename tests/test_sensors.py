"""The discovery sensor adds partitions and runs for new source files, and nothing otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from clip_assets.definitions import location_definitions
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import PartitionPlan, partition_order
from clip_assets.graph.environment import default_resources
from clip_assets.graph.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    contiguous_runs,
    partition_budget_warning,
)
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.registry import DatasetSpec
from resources.hub import HubResource
from resources.storage import LocalStorage


def _rows(n: int, offset: int) -> list[SampleRow]:
    return [
        SampleRow(url=f"http://127.0.0.1:9/{i}.jpg", text=f"t{i}")
        for i in range(offset, offset + n)
    ]


def _tick(defs, name: str, instance: DagsterInstance, resources: dict):
    """One sensor evaluation, with its partition additions applied as the daemon would."""
    sensor = defs.resolve_sensor_def(name)
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def test_sensor_adds_partitions_and_runs_only_for_new_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_datacomp_shard(source, _rows(50, 0))
    spec = DatasetSpec(name="local", source=str(source), rows_per_partition=20)
    resources = {
        **default_resources(),
        "storage": LocalStorage(root=str(tmp_path / "data")),
        "hub": HubResource(),
    }
    defs = location_definitions([spec], resources)
    graph = DatasetGraph(spec)
    instance = DagsterInstance.ephemeral()

    first = _tick(defs, "local_discover_shards", instance, resources)
    assert isinstance(first, SensorResult)
    keys = instance.get_dynamic_partitions(graph.partitions.name)
    assert len(keys) == 3 and keys == sorted(keys)
    [request] = first.run_requests
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (keys[0], keys[-1])
    assert set(request.asset_selection) == {
        graph.key("metadata"),
        graph.key("images"),
        graph.key("embeddings"),
    }

    assert isinstance(_tick(defs, "local_discover_shards", instance, resources), SkipReason)

    write_datacomp_shard(source, _rows(5, 1000))
    third = _tick(defs, "local_discover_shards", instance, resources)
    assert isinstance(third, SensorResult)
    [new] = third.run_requests
    assert new.partition_key not in keys
    assert len(instance.get_dynamic_partitions(graph.partitions.name)) == 4


def test_a_touched_file_runs_nothing_and_a_corrupt_one_is_named_in_the_skip_reason(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    path = write_datacomp_shard(source, _rows(50, 0))
    spec = DatasetSpec(name="local", source=str(source), rows_per_partition=20)
    storage = LocalStorage(root=str(tmp_path / "data"))
    resources = {**default_resources(), "storage": storage, "hub": HubResource()}
    defs = location_definitions([spec], resources)
    instance = DagsterInstance.ephemeral()
    assert isinstance(_tick(defs, "local_discover_shards", instance, resources), SensorResult)
    manifest = tmp_path / "data" / "local" / "source" / "partitions.json"
    before = manifest.read_bytes()

    path.touch()
    (source / "broken.parquet").write_bytes(b"not parquet")
    skipped = _tick(defs, "local_discover_shards", instance, resources)
    assert isinstance(skipped, SkipReason)
    assert "nothing new" in skipped.skip_message
    assert str(source / "broken.parquet") in skipped.skip_message
    # The touch's new mtime is recorded (so the next tick does not hash the file again); the
    # versions, keys and rows are those of before.
    after = json.loads(manifest.read_bytes())
    assert manifest.read_bytes() != before
    assert {k: v["version"] for k, v in after.items()} == {
        k: v["version"] for k, v in json.loads(before).items()
    }


def test_contiguous_runs_group_neighbours_up_to_the_limit() -> None:
    order = ["a", "b", "c", "d", "e", "f"]
    assert contiguous_runs(order, ["a", "b", "c", "e", "f"], 2) == [
        ("a", "b"),
        ("c", "c"),
        ("e", "f"),
    ]
    assert contiguous_runs(order, [], 4) == []


def test_sensor_only_adds_partitions_when_runs_are_left_to_a_person(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_datacomp_shard(source, _rows(30, 0))
    spec = DatasetSpec(
        name="manual", source=str(source), rows_per_partition=20, run_on_discovery=False
    )
    resources = {
        **default_resources(),
        "storage": LocalStorage(root=str(tmp_path / "data")),
        "hub": HubResource(),
    }
    defs = location_definitions([spec], resources)
    instance = DagsterInstance.ephemeral()
    result = _tick(defs, "manual_discover_shards", instance, resources)
    assert isinstance(result, SensorResult)
    assert result.run_requests == []
    assert len(instance.get_dynamic_partitions(DatasetGraph(spec).partitions.name)) == 2


def test_partition_order_applies_deletes_and_additions_in_order() -> None:
    existing = [f"k{i:05d}" for i in range(0, 20_000, 2)]
    plan = PartitionPlan(add=["k00001", "k19999"], delete=existing[1:9_000], run=[])
    order = partition_order(existing, plan)
    assert order == sorted({*existing[:1], *existing[9_000:], "k00001", "k19999"})


def test_more_partitions_than_dagster_advises_name_the_slice_size_that_fits() -> None:
    assert partition_budget_warning(25_600, 50_000) is None
    warning = partition_budget_warning(256_000, 50_000)
    assert warning is not None and "rows_per_partition to at least 128,000" in warning
