"""The retrieval asset in a dataset's graph, on a real Dagster instance over a real pipeline run."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import run_dataset
from clip_assets.graph.factory import dataset_definitions
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site, site_scenes
from clip_assets.registry import DatasetSpec
from clip_assets.schemas import RETRIEVAL_SCHEMA, RETRIEVED_IMAGES_SCHEMA

PROMPTS = [scene.caption for scene in site_scenes(3)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_model_name, make_resources) -> Iterator[dict]:
    """A small dataset built end to end (its images served on 127.0.0.1 for the whole
    module, so retrieved hits can be downloaded), with a query set of three prompts."""
    tmp = tmp_path_factory.mktemp("retrieval-graph")
    site = sample_site(good=8, broken=False)
    with ImageServer(site.routes) as server:
        write_datacomp_shard(tmp / "source", site.rows(server))
        queries = tmp / "data" / "sample" / "queries" / "prompts.csv"
        queries.parent.mkdir(parents=True)
        lines = "".join(f"p{n},{prompt}\n" for n, prompt in enumerate(PROMPTS))
        queries.write_text("prompt_id,prompt\n" + lines)
        spec = DatasetSpec(
            name="sample",
            source=str(tmp / "source"),
            allowed_hosts=("127.0.0.1",),
            query_sets=(("prompts", "sample/queries/prompts.csv"),),
        )
        resources = make_resources(tmp / "data", tiny_model_name)
        instance = DagsterInstance.ephemeral()
        assert run_dataset(spec, resources, instance, log=lambda _: None).success
        graph = DatasetGraph(spec)
        yield {
            "graph": graph,
            "assets": list(dataset_definitions(graph).assets),
            "instance": instance,
            "resources": resources,
            "queries": queries,
            "root": tmp / "data" / "sample",
        }


def materialize_keys(dataset, keys, config=None):
    run_config = {"ops": config} if config else None
    result = materialize(
        dataset["assets"],
        instance=dataset["instance"],
        resources=dataset["resources"],
        selection=keys,
        run_config=run_config,
    )
    assert result.success
    return result


def observe_query_set(dataset) -> None:
    """Observe the query set (``materialize`` of an observable source asset observes it)."""
    materialize_keys(dataset, [dataset["graph"].query_set_key("prompts")])


def status(dataset, key) -> StaleStatus:
    return get_stale_status_resolver(dataset["instance"], dataset["assets"]).get_status(key)


def test_retrieval_writes_the_dataset_and_describes_it(dataset) -> None:
    graph = dataset["graph"]
    key = graph.retrieval_key("prompts")
    observe_query_set(dataset)
    op = key.to_python_identifier()
    result = materialize_keys(dataset, [key], {op: {"config": {"k": 4, "download_images": True}}})

    out = dataset["root"] / "retrieval" / "prompts"
    hits = pq.read_table(out / "hits.parquet")
    assert hits.schema.remove_metadata() == RETRIEVAL_SCHEMA
    assert hits["query_id"].to_pylist() == [f"p{n}" for n in range(3) for _ in range(4)]
    for query_id in ("p0", "p1", "p2"):
        mine = hits.filter(pc.equal(hits["query_id"], query_id))
        assert mine["rank"].to_pylist() == [1, 2, 3, 4]
        similarity = mine["similarity"].to_numpy()
        assert (similarity[:-1] >= similarity[1:]).all()
    images = pq.read_table(out / "images.parquet")
    assert images.schema == RETRIEVED_IMAGES_SCHEMA and images.num_rows == hits.num_rows
    assert images["status"].null_count == 0
    assert (
        pq.read_table(out / "fondant.parquet")["image_url"].to_pylist() == hits["url"].to_pylist()
    )

    metadata = result.asset_materializations_for_node(op)[0].metadata
    assert metadata["queries"].value == 3 and metadata["dagster/row_count"].value == 12
    histogram = metadata["similarity_histogram"].value.records
    assert sum(record.data["hits"] for record in histogram) == 12
    assert isinstance(metadata["similarity_p50"].value, float)
    assert metadata["top_hits"].value.startswith("| query | rank | similarity |")
    assert metadata["images_ok"].value == pc.sum(pc.equal(images["status"], "ok")).as_py()
    assert status(dataset, key) == StaleStatus.FRESH

    # A run without the download removes the images file of the run before.
    materialize_keys(dataset, [key], {op: {"config": {"k": 4}}})
    assert not (out / "images.parquet").exists()


def test_retrieval_goes_stale_when_the_index_is_rebuilt(dataset) -> None:
    graph = dataset["graph"]
    key, index = graph.retrieval_key("prompts"), graph.key("faiss_index")
    materialize_keys(dataset, [key])
    assert status(dataset, key) == StaleStatus.FRESH

    def rebuild(**config) -> None:
        op_config = {index.to_python_identifier(): {"config": {"rebuild": True, **config}}}
        materialize_keys(dataset, [index], op_config)

    rebuild()  # the same exact index, byte for byte: its data version, and the hits, hold
    assert status(dataset, key) == StaleStatus.FRESH
    rebuild(index_key="HNSW8")  # a different index: what was retrieved from the old one is stale
    assert status(dataset, key) == StaleStatus.STALE

    materialize_keys(dataset, [key])
    assert status(dataset, key) == StaleStatus.FRESH


def test_retrieval_goes_stale_when_the_query_set_changes(dataset) -> None:
    key = dataset["graph"].retrieval_key("prompts")
    observe_query_set(dataset)
    materialize_keys(dataset, [key])
    observe_query_set(dataset)  # same bytes, same data version
    assert status(dataset, key) == StaleStatus.FRESH

    with dataset["queries"].open("a") as queries:
        queries.write("p3,a fourth prompt\n")
    observe_query_set(dataset)
    assert status(dataset, key) == StaleStatus.STALE
