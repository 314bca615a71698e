"""A wave of partition updates rebuilds the whole-dataset assets once, after the wave.

The real graph on a real instance: a ranged run of two partitions is held inside its images
step (the last image answers only when the test says so) while the daemon's automation
conditions are evaluated, as the rebuild sensor evaluates them.
"""

from __future__ import annotations

import threading
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    evaluate_automation_conditions,
    materialize,
)

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, WHOLE_DATASET_STAGES, DatasetGraph
from clip_assets.graph.driver import discover
from clip_assets.graph.factory import dataset_definitions
from clip_assets.graph.partitions import range_request
from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, held, image
from clip_assets.registry import DatasetSpec


def _materialized(instance: DagsterInstance, key: AssetKey, partitions: list[str]) -> bool:
    done = instance.get_materialized_partitions(key)
    return set(partitions) <= done


def _dataset(
    tmp_path: Path, name: str, server: ImageServer, routes: dict, resources: dict
) -> tuple[DatasetSpec, DatasetGraph, list, Definitions]:
    """A DataComp-schema source of one row per route, two rows a partition, and its graph."""
    rows = [SampleRow(url=server.url(path), text=path) for path in sorted(routes)]
    write_datacomp_shard(tmp_path / "source", rows)
    spec = DatasetSpec(
        name=name,
        source=str(tmp_path / "source"),
        rows_per_partition=2,
        allowed_hosts=("127.0.0.1",),
    )
    graph = DatasetGraph(spec)
    assets = list(dataset_definitions(graph).assets)
    return spec, graph, assets, Definitions(assets=assets, resources=resources)


def _requested(result, graph: DatasetGraph) -> set[AssetKey]:
    """The assets requested on one tick: unpartitioned ones requested together share a run."""
    stages = PARTITIONED_STAGES + WHOLE_DATASET_STAGES
    return {key for key in graph.keys(stages) if result.get_num_requested(key)}


def test_a_wave_rebuilds_index_mapping_and_release_once_after_it(
    tmp_path: Path, tiny_model_name: str, make_resources
) -> None:
    release = threading.Event()
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(3)}
    routes["/img/3.jpg"] = held(image(images.jpeg(96, 80, seed=3)), release)
    with ImageServer(routes) as server:
        resources = make_resources(tmp_path / "data", tiny_model_name)
        spec, graph, assets, defs = _dataset(tmp_path, "wave", server, routes, resources)
        instance = DagsterInstance.ephemeral()
        keys = discover(spec, resources, instance).add
        assert len(keys) == 2
        baseline = evaluate_automation_conditions(defs, instance)
        assert baseline.total_requested == 0

        _, tags = range_request(keys[0], keys[-1])
        outcome: dict[str, bool] = {}
        worker = threading.Thread(
            target=lambda: outcome.update(
                success=materialize(
                    assets,
                    instance=instance,
                    resources=resources,
                    selection=graph.keys(PARTITIONED_STAGES),
                    tags=tags,
                ).success
            )
        )
        worker.start()
        try:
            deadline = threading.Event()
            for _ in range(600):
                if _materialized(instance, graph.key("metadata"), keys):
                    break
                deadline.wait(0.2)
            assert _materialized(instance, graph.key("metadata"), keys)
            # Metadata is done, images wait on the held image, embeddings have not started.
            during = evaluate_automation_conditions(defs, instance, cursor=baseline.cursor)
            assert not _materialized(instance, graph.key("images"), keys)
            assert during.total_requested == 0, _requested(during, graph)
        finally:
            release.set()
            worker.join(timeout=300)
    assert outcome.get("success")

    after = evaluate_automation_conditions(defs, instance, cursor=during.cursor)
    assert _requested(after, graph) == set(graph.keys(WHOLE_DATASET_STAGES))

    built = materialize(
        assets, instance=instance, resources=resources, selection=graph.keys(WHOLE_DATASET_STAGES)
    )
    assert built.success
    settled = evaluate_automation_conditions(defs, instance, cursor=after.cursor)
    assert settled.total_requested == 0, _requested(settled, graph)


def test_a_run_waiting_for_its_automatic_retry_holds_the_rebuild(
    tmp_path: Path, tiny_model_name: str, make_resources
) -> None:
    """R10: a run ended by a stop was marked failed, and before its retry was created the rebuild
    sensor built the index over part of the wave. The failed run here is real (its embeddings
    step cannot load its model); the retry is what the run-retry daemon does: a new run of the
    same partition, recorded on the failed one."""
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(4)}
    with ImageServer(routes) as server:
        resources = make_resources(tmp_path / "data", tiny_model_name)
        spec, graph, assets, defs = _dataset(tmp_path, "retried", server, routes, resources)
        instance = DagsterInstance.ephemeral(
            settings={"run_retries": {"enabled": True, "retry_on_asset_or_op_failure": True}}
        )
        first, second = discover(spec, resources, instance).add
        baseline = evaluate_automation_conditions(defs, instance)

        def run(partition: str, model: str, tags: dict[str, str] | None = None):
            return materialize(
                assets,
                instance=instance,
                resources=make_resources(tmp_path / "data", model),
                selection=graph.keys(PARTITIONED_STAGES),
                partition_key=partition,
                tags=tags,
                raise_on_error=False,
            )

        assert run(first, tiny_model_name).success
        failed = run(
            second, "local-dir:" + str(tmp_path / "no-model"), {"dagster/max_retries": "1"}
        )
        assert not failed.success
        assert instance.get_run_by_id(failed.run_id).is_complete_and_waiting_to_retry

        waiting = evaluate_automation_conditions(defs, instance, cursor=baseline.cursor)
        assert waiting.total_requested == 0, _requested(waiting, graph)

        retry = run(second, tiny_model_name)
        assert retry.success
        instance.add_run_tags(failed.run_id, {"dagster/auto_retry_run_id": retry.run_id})
    after = evaluate_automation_conditions(defs, instance, cursor=waiting.cursor)
    assert _requested(after, graph) == set(graph.keys(WHOLE_DATASET_STAGES))
