"""A partition that fails for good: its neighbours in the failed range run again alone, the
index leaves it out and says so, within the dataset's tolerated share, and stops past it;
re-executed alone once fixed, it repeats no finished work.

Real graph, real instance, real files: one source file of three slices and one of one slice,
the second corrupted after discovery, so its partition fails in metadata on every attempt. The
four partitions run as one ranged run (as a backfill or the discovery sensor runs them), which
fails; the held-partitions sensor is then ticked as the daemon would tick it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from dagster import AssetPartitionStatus, DagsterInstance, build_sensor_context

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, WHOLE_DATASET_STAGES, DatasetGraph
from clip_assets.graph.driver import discover
from clip_assets.graph.held_partitions import build_held_partitions_sensor
from clip_assets.graph.partitions import range_request
from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, image
from clip_assets.registry import DatasetSpec


@pytest.fixture(scope="module")
def broken(tmp_path_factory, tiny_model_name, make_resources, materialize_stages):
    _run = materialize_stages
    tmp = tmp_path_factory.mktemp("failed-partitions")
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(8)}
    with ImageServer(routes) as server:
        urls = [server.url(path) for path in sorted(routes)]
        good = write_datacomp_shard(tmp / "source", [SampleRow(u, f"a {u}") for u in urls[:6]])
        bad = write_datacomp_shard(tmp / "source", [SampleRow(u, f"b {u}") for u in urls[6:]])
        spec = DatasetSpec(
            name="flaky",
            source=str(tmp / "source"),
            rows_per_partition=2,
            allowed_hosts=("127.0.0.1",),
            tolerated_failed_share=0.3,
        )
        graph = DatasetGraph(spec)
        resources = make_resources(tmp / "data", tiny_model_name)
        instance = DagsterInstance.ephemeral()
        keys = discover(spec, resources, instance).add
        bad_key = next(k for k in keys if k.startswith(bad.stem[:12]))
        original = bad.read_bytes()
        bad.write_bytes(b"not a parquet file")
        _, tags = range_request(keys[0], keys[-1])
        ranged = _run(graph, instance, resources, PARTITIONED_STAGES, tags=tags)
        sensor = build_held_partitions_sensor(graph)
        with build_sensor_context(instance=instance) as context:
            tick = sensor(context)
        outcomes = {
            request.partition_key: _run(
                graph,
                instance,
                resources,
                PARTITIONED_STAGES,
                request.partition_key,
                tags=request.tags,
            )
            for request in tick.run_requests
        }
        with build_sensor_context(instance=instance, cursor=tick.cursor) as context:
            second = sensor(context)
        built = _run(graph, instance, resources, WHOLE_DATASET_STAGES)
        yield {
            "tmp": tmp,
            "graph": graph,
            "spec": spec,
            "instance": instance,
            "resources": resources,
            "keys": keys,
            "bad_key": bad_key,
            "bad": bad,
            "original": original,
            "ranged": ranged,
            "outcomes": outcomes,
            "second": second,
            "built": built,
            "server": server,
            "run": materialize_stages,
            "good": good,
        }


def test_the_neighbours_it_held_back_run_alone_once(broken) -> None:
    assert not broken["ranged"].success
    held = sorted(broken["outcomes"])
    assert held == [k for k in broken["keys"] if k != broken["bad_key"]]
    assert all(result.success for result in broken["outcomes"].values())
    assert broken["second"].run_requests == []
    statuses = broken["instance"].get_status_by_partition(
        broken["graph"].key("embeddings"), broken["keys"], broken["graph"].partitions
    )
    assert statuses[broken["bad_key"]] == AssetPartitionStatus.FAILED
    assert {statuses[k] for k in held} == {AssetPartitionStatus.MATERIALIZED}


def test_the_index_leaves_it_out_and_the_index_metadata_and_card_say_so(broken) -> None:
    assert broken["built"].success
    root = broken["tmp"] / "data" / "flaky"
    infos = json.loads((root / "index" / "index_infos.json").read_text())
    assert infos["partitions"]["left_out"]["failed"] == [broken["bad_key"]]
    assert infos["partitions"]["indexed"] == 3
    materialization = broken["built"].asset_materializations_for_node("flaky__faiss_index")[0]
    assert materialization.metadata["left_out_failed"].value == 1
    card = (root / "release" / "README.md").read_text()
    assert f"failed for good (1): `{broken['bad_key']}`" in card


def test_past_the_tolerated_share_the_index_stops_and_names_it(broken) -> None:
    strict = DatasetGraph(replace(broken["spec"], tolerated_failed_share=0.1))
    result = broken["run"](strict, broken["instance"], broken["resources"], ("faiss_index",))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert broken["bad_key"] in message and "tolerated" in message


def test_once_fixed_it_reruns_alone_and_repeats_no_finished_work(broken) -> None:
    broken["bad"].write_bytes(broken["original"])
    server, root = broken["server"], broken["tmp"] / "data" / "flaky"
    hits = dict(server.hits)
    kept = {p.name: p.stat().st_mtime_ns for p in (root / "images").iterdir()}
    rerun = broken["run"](
        broken["graph"],
        broken["instance"],
        broken["resources"],
        PARTITIONED_STAGES,
        broken["bad_key"],
    )
    assert rerun.success
    fetched = {path for path, n in server.hits.items() if n > hits.get(path, 0)}
    assert fetched - {"/robots.txt"} == {"/img/6.jpg", "/img/7.jpg"}
    after = {p.name: p.stat().st_mtime_ns for p in (root / "images").iterdir()}
    assert {n: t for n, t in after.items() if n in kept} == kept
    # A run over every partition (re-executing the whole backfill) now fetches nothing.
    hits = dict(server.hits)
    keys = broken["keys"]
    _, tags = range_request(keys[0], keys[-1])
    again = broken["run"](
        broken["graph"], broken["instance"], broken["resources"], PARTITIONED_STAGES, tags=tags
    )
    assert again.success
    assert {p: n for p, n in server.hits.items() if p.startswith("/img/")} == {
        p: n for p, n in hits.items() if p.startswith("/img/")
    }
