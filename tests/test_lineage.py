"""Lineage as the UI shows it: stale images when the download settings change, stale embeddings
when the model changes, a stale index after either, and nothing stale otherwise.

The real graph materialised once on a real instance; the code location is then rebuilt with
other settings, as a redeploy would, and asked for each asset's stale status by Dagster's own
resolver (``CachingStaleStatusResolver``, which the UI's staleStatus field reads).
"""

from __future__ import annotations

import pytest
from dagster import AssetKey, DagsterInstance, materialize
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, WHOLE_DATASET_STAGES, DatasetGraph
from clip_assets.graph.driver import discover
from clip_assets.graph.factory import dataset_definitions
from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, image
from clip_assets.registry import DatasetSpec
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_model_name, make_resources):
    tmp = tmp_path_factory.mktemp("lineage")
    routes = {f"/img/{i}.jpg": image(images.jpeg(96, 80, seed=i)) for i in range(3)}
    with ImageServer(routes) as server:
        rows = [SampleRow(server.url(path), path) for path in sorted(routes)]
        write_datacomp_shard(tmp / "source", rows)
        spec = DatasetSpec(name="lin", source=str(tmp / "source"), allowed_hosts=("127.0.0.1",))
        graph = DatasetGraph(spec)
        resources = make_resources(tmp / "data", tiny_model_name)
        instance = DagsterInstance.ephemeral()
        [key] = discover(spec, resources, instance).add
        defs = dataset_definitions(graph, resources)
        for stages, partition in ((PARTITIONED_STAGES, key), (WHOLE_DATASET_STAGES, None)):
            result = materialize(
                list(defs.assets),
                instance=instance,
                resources=resources,
                selection=graph.keys(stages),
                partition_key=partition,
            )
            assert result.success
        yield {"graph": graph, "resources": resources, "instance": instance, "key": key}


def _stale(made, resources) -> set[str]:
    """The stages the UI would mark stale if the location were loaded with ``resources``."""
    graph = made["graph"]
    assets = list(dataset_definitions(graph, resources).assets)
    resolver = get_stale_status_resolver(made["instance"], assets)
    stale = set()
    for stage in PARTITIONED_STAGES + WHOLE_DATASET_STAGES:
        partition = made["key"] if stage in PARTITIONED_STAGES else None
        if resolver.get_status(AssetKey([graph.name, stage]), partition) == StaleStatus.STALE:
            stale.add(stage)
    return stale


def test_nothing_is_stale_under_the_settings_that_made_it(made) -> None:
    assert _stale(made, made["resources"]) == set()


def test_other_download_settings_make_images_and_the_index_stale(made) -> None:
    downloader = made["resources"]["downloader"]
    changed = DownloaderResource(**{**downloader.model_dump(), "image_size": 128})
    assert _stale(made, {**made["resources"], "downloader": changed}) == {"images", "faiss_index"}


def test_download_speed_settings_change_nothing(made) -> None:
    downloader = made["resources"]["downloader"]
    faster = DownloaderResource(**{**downloader.model_dump(), "concurrency": 256, "retries": 5})
    assert _stale(made, {**made["resources"], "downloader": faster}) == set()


def test_another_model_makes_embeddings_and_the_index_stale(made) -> None:
    model = made["resources"]["clip_model"]
    other = ClipModelResource(**{**model.model_dump(), "output_dtype": "float16"})
    assert _stale(made, {**made["resources"], "clip_model": other}) == {"embeddings", "faiss_index"}


def test_images_made_again_under_new_settings_make_embeddings_stale(made) -> None:
    """Last: it re-materialises the images under the new settings."""
    graph, resources = made["graph"], made["resources"]
    downloader = resources["downloader"]
    changed = {
        **resources,
        "downloader": DownloaderResource(**{**downloader.model_dump(), "image_size": 128}),
    }
    result = materialize(
        list(dataset_definitions(graph, changed).assets),
        instance=made["instance"],
        resources=changed,
        selection=[graph.key("images")],
        partition_key=made["key"],
    )
    assert result.success
    assert _stale(made, changed) == {"embeddings", "faiss_index"}
