"""A GCS root whose server stops in the middle of an upload: a partition's images file, then
the index (while it is staged, and while the committed folder is copied into place). Each
time: a clear failure naming the object, nothing half there, the index folder read whole from
one build, and a rerun that completes with storage consistent (every metadata row once in
images; the index, its shard list, its infos and the id mapping from one build)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import faiss
import pyarrow as pa
import pytest
from dagster import DagsterInstance
from stand_ins.gcs_outage import StoppableGcs

from clip_assets import paths
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import plan_partitions
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site
from clip_assets.registry import DatasetSpec
from clip_assets.source.files import HubAccess
from resources.storage import GCSStorage

BUCKET = "fault-bucket"
PREFIX = "faults"
PARTITIONED = ("metadata", "images", "embeddings")


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoppableGcs]:
    with StoppableGcs(tmp_path / "gcs", BUCKET) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        yield server


def step_errors(result) -> str:
    return "\n".join(
        event.event_specific_data.error.to_string()
        for event in result.all_events
        if event.is_step_failure
    )


def test_uploads_cut_by_a_stopped_server_fail_clearly_and_a_rerun_completes(
    tmp_path: Path, gcs: StoppableGcs, tiny_model_name: str, make_resources, materialize_stages
) -> None:
    site = sample_site(good=10)
    with ImageServer(site.routes) as image_server:
        rows = site.rows(image_server)
        write_datacomp_shard(tmp_path / "source", rows)
        spec = DatasetSpec(
            name="faulty",
            source=str(tmp_path / "source"),
            rows_per_partition=8,
            allowed_hosts=("127.0.0.1",),
        )
        graph = DatasetGraph(spec)
        # Give up on a dead server after 2 s, not google's 120.
        storage = GCSStorage(bucket=BUCKET, prefix=PREFIX, retry_timeout_s=2.0)
        resources = {**make_resources(tmp_path / "unused", tiny_model_name), "storage": storage}
        instance = DagsterInstance.ephemeral()
        plan = plan_partitions(spec, storage, [], HubAccess())
        instance.add_dynamic_partitions(graph.partitions.name, plan.add)
        first, second = plan.add

        def run(stages: tuple[str, ...], partition: str | None = None):
            return materialize_stages(graph, instance, resources, stages, partition)

        # 1. The server stops while the first partition's images file is being uploaded.
        images_path = paths.images(spec.name, first)
        gcs.stop_during_upload_of(f"{PREFIX}/{images_path}")
        result = run(PARTITIONED, first)
        assert not result.success and gcs.stopped.is_set()
        assert storage.uri(images_path) in step_errors(result)
        gcs.start()
        assert storage.list(f"{spec.name}/images") == []  # nothing half there
        assert run(PARTITIONED, first).success
        metadata = storage.read_table(paths.metadata(spec.name, first))
        images = storage.read_table(images_path)
        assert images["uid"].equals(metadata["uid"])  # every row once, in order

        # 2. An index over the first partition, then the second partition; the rebuilt index
        # is staged and committed as one folder (resources/folder_commits.py).
        assert run(("faiss_index", "id_mapping")).success
        assert run(PARTITIONED, second).success
        index_dir = paths.index_dir(spec.name)
        staged = re.escape(f"{PREFIX}/.commits/{quote(index_dir, safe='')}/".encode())

        # 2a. The server stops while the new index is staged: the folder is the old build.
        gcs.stop_at(staged + rb"[0-9a-f-]+/shards\.json")
        result = run(("faiss_index",))
        assert not result.success and gcs.stopped.is_set()
        assert "shards.json failed" in step_errors(result)
        gcs.start()
        assert_one_build(storage, spec.name, [first])

        # 2b. The server stops while the committed index is copied into place, before its
        # infos: a reader sees the new build whole, and the next run's setup finishes it.
        target = quote(f"{PREFIX}/{index_dir}/{paths.INFOS_NAME}", safe="")
        gcs.stop_at(f"copyTo/b/{BUCKET}/o/{target}".encode())
        result = run(("faiss_index",))
        assert not result.success and gcs.stopped.is_set()
        gcs.start()
        with storage.local_dir(index_dir) as seen:
            assert (
                json.loads((seen / paths.SHARD_LIST_NAME).read_text())["total_rows"]
                == (json.loads((seen / paths.INFOS_NAME).read_text())["nb vectors"])
                == faiss.read_index(str(seen / paths.INDEX_NAME)).ntotal
            )
        assert run(("id_mapping",)).success  # its storage setup rolls the index forward
        assert storage.list(".commits") == []
        assert_one_build(storage, spec.name, [first, second])
        assert run(("faiss_index", "id_mapping")).success

    assert_one_build(storage, spec.name, [first, second])


def assert_one_build(storage: GCSStorage, ds: str, keys: list[str]) -> None:
    """Every metadata row once in images; index, shard list, infos and mapping agree."""
    ok_uids: list[str] = []
    for key in keys:
        images = storage.read_table(paths.images(ds, key))
        assert images["uid"].equals(storage.read_table(paths.metadata(ds, key))["uid"])
        embeddings = storage.read_table(paths.embeddings(ds, key), columns=["uid"])
        ok = images.filter(pa.compute.equal(images["status"], "ok"))["uid"]
        assert embeddings["uid"].to_pylist() == ok.to_pylist()
        ok_uids += ok.to_pylist()
    index_dir = paths.index_dir(ds)
    shards = json.loads(storage.read_bytes(f"{index_dir}/shards.json"))
    infos = json.loads(storage.read_bytes(f"{index_dir}/index_infos.json"))
    with storage.local_file(f"{index_dir}/faiss") as local:
        vectors = faiss.read_index(str(local)).ntotal
    mapping = pa.concat_tables(
        storage.read_table(path) for path in storage.list(paths.id_mapping_dir(ds))
    )
    assert [entry["name"] for entry in shards["shards"]] == keys
    assert vectors == shards["total_rows"] == infos["nb vectors"] == len(ok_uids)
    assert mapping["i"].to_pylist() == list(range(vectors))
    assert mapping["uid"].to_pylist() == ok_uids
