"""``<ds>/source``: the dataset's parquet files, observed, not computed."""

import hashlib

from dagster import DataVersion, ObserveResult, SourceAsset, observable_source_asset

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.source.files import list_source_files
from resources.hub import HubResource


def build_source_asset(graph: DatasetGraph) -> SourceAsset:
    """An observable source asset whose data version changes when any source file changes."""
    spec = graph.spec

    @observable_source_asset(
        key=graph.key("source"),
        description=f"Source parquet files of {spec.name} ({spec.source}); observing lists "
        "them and versions the listing.",
        group_name=spec.name,
    )
    def source(hub: HubResource) -> ObserveResult:
        files = list_source_files(spec, hub.access())
        listing = "\n".join(f"{f.path}@{f.version}" for f in files)
        return ObserveResult(
            data_version=DataVersion(hashlib.sha256(listing.encode()).hexdigest()[:16]),
            metadata={
                "files": len(files),
                "bytes": sum(f.size for f in files),
                "revision": (files[0].revision or "") if files else "",
            },
        )

    return source
