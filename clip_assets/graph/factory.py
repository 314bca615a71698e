"""``dataset_definitions``: one dataset's whole graph as one ``Definitions``.

The only place a dataset's assets, checks and sensors are assembled. The code location
(``clip_assets.definitions``) merges one of these per registered dataset with the shared
resources; the driver, the CLI and the tests use it as well. The rebuild automation is built
here too, one sensor per dataset, so each dataset's index builds carry their own run tag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from dagster import Definitions

from clip_assets.assets.embeddings import build_embeddings_asset
from clip_assets.assets.faiss_index import build_faiss_index_asset
from clip_assets.assets.hf_release import build_hf_release_asset
from clip_assets.assets.id_mapping import build_id_mapping_asset
from clip_assets.assets.images import build_images_asset
from clip_assets.assets.index_checks import build_index_checks
from clip_assets.assets.metadata import build_metadata_asset
from clip_assets.assets.query_set import build_query_set_asset
from clip_assets.assets.retrieval import build_retrieval_asset
from clip_assets.assets.source import build_source_asset
from clip_assets.graph.automation import build_rebuild_sensor
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.discovery_sensor import build_discovery_sensor
from clip_assets.graph.held_partitions import build_held_partitions_sensor
from clip_assets.graph.lineage import stage_code_versions

#: The asset builders in data order: source -> metadata -> ... -> hf_release.
ASSET_BUILDERS = (
    build_source_asset,
    build_metadata_asset,
    build_images_asset,
    build_embeddings_asset,
    build_faiss_index_asset,
    build_id_mapping_asset,
    build_hf_release_asset,
)


#: Per named query set of the registry: the observed query set, then its retrieval.
QUERY_SET_BUILDERS = (build_query_set_asset, build_retrieval_asset)


def dataset_definitions(
    graph: DatasetGraph, resources: Mapping[str, object] | None = None
) -> Definitions:
    """The dataset's source asset, six stage assets, two assets per query set (the query set
    and its retrieval), their checks, its discovery sensor, the sensor that reruns partitions
    a failed range held back, and the automation sensor that rebuilds its index.
    ``resources`` (those the runs will use) set the code versions of the stages whose output
    they decide (``graph.lineage``)."""
    if resources is not None:
        versions = tuple(sorted(stage_code_versions(resources).items()))
        graph = dataclasses.replace(graph, code_versions=versions)
    query_set_assets = [
        build(graph, name, location)
        for name, location in graph.spec.query_sets
        for build in QUERY_SET_BUILDERS
    ]
    return Definitions(
        assets=[build(graph) for build in ASSET_BUILDERS] + query_set_assets,
        asset_checks=build_index_checks(graph),
        sensors=[
            build_discovery_sensor(graph),
            build_held_partitions_sensor(graph),
            build_rebuild_sensor(graph),
        ],
    )
