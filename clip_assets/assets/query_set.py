"""``<ds>/queries/<name>``: a registered query set's files, observed, not computed."""

from dagster import DataVersion, ObserveResult, SourceAsset, observable_source_asset

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.query_sets import local_query_set
from clip_assets.retrieve.query_set import QuerySet, query_set_version
from resources.storage import StorageResource


def build_query_set_asset(graph: DatasetGraph, name: str, location: str) -> SourceAsset:
    """An observable source asset whose data version changes when the query set's bytes do."""

    @observable_source_asset(
        key=graph.query_set_key(name),
        description=f"Query set {name!r} of {graph.name} ({location}): prompts, embeddings, "
        "image URLs or files; observing hashes its files.",
        group_name=graph.name,
    )
    def query_set(storage: StorageResource) -> ObserveResult:
        with local_query_set(storage, location) as local:
            queries = QuerySet(local)
            version = query_set_version(local)
            rows = len(queries)
        return ObserveResult(
            data_version=DataVersion(version),
            metadata={"queries": rows, "kind": queries.kind, "location": location},
        )

    return query_set
