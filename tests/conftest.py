"""Shared stand-ins: a loopback image site, a tiny CLIP model, the demo's trained CLIP,
pipeline resources."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from gcp_storage_emulator.server import create_server

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.factory import dataset_definitions
from clip_assets.offline.demo_model import DemoModel, ensure_demo_model
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import SampleSite, sample_site
from clip_assets.offline.shapes_clip import ShapesRecipe
from clip_assets.offline.weights import install_tiny_model
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource
from resources.hub import HubResource
from resources.storage import LocalStorage


@pytest.fixture(scope="session", autouse=True)
def _hub_client_stays_on_loopback() -> Iterator[None]:
    """huggingface_hub builds its user agent with a harness registry fetched from
    huggingface.co whatever endpoint a client is given; with telemetry off it does not, so
    the tests reach only loopback addresses."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
        patch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """An in-memory GCS emulator on a free loopback port, with bucket ``clip-bucket``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="clip-bucket")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Runs the test under umask 022, then 077; restores the previous umask after."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.fixture(scope="session")
def tiny_model_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-layer open_clip model with ViT-B-32's preprocessing and 512-d output."""
    return install_tiny_model(tmp_path_factory.mktemp("tiny-model"))


#: The trained model's recipe in tests: the demo's own (at half its steps, seen pairs reach only
#: about 0.44 precision@5, under the recipe's floor).
TEST_RECIPE = ShapesRecipe()


@pytest.fixture(scope="session")
def trained_clip(request: pytest.FixtureRequest, tmp_path_factory) -> DemoModel:
    """The demo's small CLIP trained on drawn scenes: at most once per session, and once per
    recipe and code across sessions (pytest's cache folder, keyed by the recipe's digest)."""
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = cache.mkdir("shapes-clip") if cache is not None else tmp_path_factory.mktemp("m")
    return ensure_demo_model(folder, TEST_RECIPE)


@pytest.fixture(scope="session")
def site() -> SampleSite:
    return sample_site(good=20, slow_s=3.0)


@pytest.fixture(scope="session")
def image_server(site: SampleSite) -> Iterator[ImageServer]:
    with ImageServer(site.routes) as server:
        yield server


@pytest.fixture(scope="session")
def materialize_stages():
    """Runs stages of a dataset's graph as the code location defines them, in ``instance``,
    without raising on a failed step: ``run(graph, instance, resources, stages, partition,
    tags)``."""
    return materialize_graph_stages


def materialize_graph_stages(
    graph: DatasetGraph,
    instance: DagsterInstance,
    resources: dict[str, object],
    stages: tuple[str, ...],
    partition: str | None = None,
    tags: dict[str, str] | None = None,
) -> ExecuteInProcessResult:
    return materialize(
        list(dataset_definitions(graph).assets),
        instance=instance,
        resources=resources,
        selection=graph.keys(stages),
        partition_key=partition,
        tags=tags,
        raise_on_error=False,
    )


@pytest.fixture(scope="session")
def make_resources():
    """Builds resources for a test run: local storage, the tiny model, short download limits."""
    return pipeline_resources


def pipeline_resources(root: Path, model_name: str) -> dict[str, object]:
    return {
        "storage": LocalStorage(root=str(root)),
        "clip_model": ClipModelResource(
            model_name=model_name, pretrained=None, batch_size=8, num_workers=1
        ),
        "downloader": DownloaderResource(
            connect_timeout_s=1.0,
            read_timeout_s=1.0,
            total_timeout_s=1.5,
            retries=1,
            backoff_base_s=0.05,
            backoff_max_s=0.1,
            workers=0,
        ),
        "hub": HubResource(),
    }
