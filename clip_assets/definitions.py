"""The Dagster code location: one asset graph per registered dataset, resources from the
environment.

Environment: ``CLIP_ASSETS_ROOT`` (storage root, local folder or ``gs://bucket/prefix``;
default ``data``), ``CLIP_ASSETS_DATASETS`` (dataset registry file), ``HF_TOKEN`` (read at
run time through EnvVar, never stored in config), ``CLIP_ASSETS_RELEASE_REPO`` (publish
target), ``CLIP_ASSETS_MODEL`` / ``CLIP_ASSETS_PRETRAINED`` (a tag, a weights file, or
``none``) / ``CLIP_ASSETS_DEVICE``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dagster import Definitions, EnvVar

from clip_assets.assets.dataset import DatasetGraph
from clip_assets.assets.embeddings import build_embeddings_asset
from clip_assets.assets.faiss_index import build_faiss_index_asset
from clip_assets.assets.hf_release import build_hf_release_asset
from clip_assets.assets.id_mapping import build_id_mapping_asset
from clip_assets.assets.images import build_images_asset
from clip_assets.assets.index_checks import build_checks
from clip_assets.assets.metadata import build_metadata_asset
from clip_assets.assets.source import build_source_asset
from clip_assets.registry import DatasetSpec, load_registry
from clip_assets.sensors import build_discovery_sensor, build_rebuild_sensor
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource
from resources.hub import HubResource
from resources.storage import storage_for_root

STAGES = (
    build_metadata_asset,
    build_images_asset,
    build_embeddings_asset,
    build_faiss_index_asset,
    build_id_mapping_asset,
    build_hf_release_asset,
)


def _pretrained(value: str) -> str | None:
    """``none`` names no weights: a ``local-dir:`` model folder carries its own."""
    return None if value.lower() == "none" else value


def default_resources() -> dict[str, object]:
    """Resources configured from the environment (see the module docstring)."""
    return {
        "storage": storage_for_root(os.environ.get("CLIP_ASSETS_ROOT", "data")),
        "hub": HubResource(
            token=EnvVar("HF_TOKEN") if "HF_TOKEN" in os.environ else None,
            release_repo=os.environ.get("CLIP_ASSETS_RELEASE_REPO"),
        ),
        "clip_model": ClipModelResource(
            model_name=os.environ.get("CLIP_ASSETS_MODEL", "ViT-B-32"),
            pretrained=_pretrained(os.environ.get("CLIP_ASSETS_PRETRAINED", "laion2b_s34b_b79k")),
            device=os.environ.get("CLIP_ASSETS_DEVICE", "auto"),
        ),
        "downloader": DownloaderResource(),
    }


def dataset_assets(graph: DatasetGraph) -> list:
    """The source asset and the six stage assets of one dataset."""
    return [build_source_asset(graph), *(build(graph) for build in STAGES)]


def build_definitions(
    specs: Sequence[DatasetSpec], resources: dict[str, object] | None = None
) -> Definitions:
    """Assets, checks and sensors of every dataset in ``specs``."""
    graphs = [DatasetGraph(spec) for spec in specs]
    assets: list = []
    checks: list = []
    sensors: list = []
    for graph in graphs:
        assets.extend(dataset_assets(graph))
        checks.extend(build_checks(graph))
        sensors.append(build_discovery_sensor(graph))
    sensors.append(build_rebuild_sensor(graphs))
    return Definitions(
        assets=assets,
        asset_checks=checks,
        sensors=sensors,
        resources=resources if resources is not None else default_resources(),
    )


defs = build_definitions(load_registry())
