"""A rerun never leaves worse data than before: a touched source redoes nothing, and images
fetched again while their hosts are down keep the images stored earlier."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import DagsterInstance, materialize

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import run_dataset
from clip_assets.graph.factory import dataset_definitions
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site
from clip_assets.registry import DatasetSpec


def _ok(root: Path) -> int:
    table = pq.read_table(root / "images")
    return pc.sum(pc.equal(table["status"], "ok")).as_py()


def test_touch_redoes_nothing_and_a_refetch_with_hosts_down_keeps_ok_images(
    tmp_path: Path, tiny_model_name: str, make_resources
) -> None:
    site = sample_site(good=8, broken=False)
    resources = make_resources(tmp_path / "data", tiny_model_name)
    instance = DagsterInstance.ephemeral()
    spec = DatasetSpec(
        name="kept",
        source=str(tmp_path / "source"),
        rows_per_partition=4,
        allowed_hosts=("127.0.0.1",),
    )
    root = tmp_path / "data" / "kept"
    with ImageServer(site.routes) as server:
        shard = write_datacomp_shard(tmp_path / "source", site.rows(server))
        assert run_dataset(spec, resources, instance, log=lambda _: None).success
        before = _ok(root)
        assert before == 8
        hits = sum(server.hits.values())
        os.utime(shard, None)  # a touch: new mtime, same bytes
        again = run_dataset(spec, resources, instance, log=lambda _: None)
        assert again.success and again.partition_runs == 0
        assert sum(server.hits.values()) == hits
    # The hosts are gone now; a forced refetch must not turn stored ok rows into failures.
    graph = DatasetGraph(spec)
    result = materialize(
        list(dataset_definitions(graph).assets),
        instance=instance,
        resources=resources,
        selection=[graph.key("images")],
        partition_key=sorted(instance.get_dynamic_partitions(graph.partitions.name))[0],
        run_config={"ops": {"kept__images": {"config": {"refetch": True}}}},
    )
    assert result.success
    assert _ok(root) == before
