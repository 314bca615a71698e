"""``<ds>/source``: the dataset's parquet files, observed, not computed."""

import hashlib

from dagster import DataVersion, MetadataValue, ObserveResult, SourceAsset, observable_source_asset

from clip_assets import paths
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.source.discover import known_versions
from clip_assets.source.files import SourceError, read_footer, scan_source
from clip_assets.source.slices import manifest_from_json
from resources.hub import HubResource
from resources.storage import StorageResource


def build_source_asset(graph: DatasetGraph) -> SourceAsset:
    """An observable source asset whose data version changes when any source file changes."""
    spec = graph.spec

    @observable_source_asset(
        key=graph.key("source"),
        description=f"Source parquet files of {spec.name} ({spec.source}); observing lists "
        "them, versions the listing by the files' contents, and names the files it could not "
        "read.",
        group_name=spec.name,
    )
    def source(hub: HubResource, storage: StorageResource) -> ObserveResult:
        """Reads: the source listing, the parquet footers of files discovery has not seen at
        this version, and the partition manifest so that unchanged local files are not hashed
        again. Writes: nothing. Guarantees: the data version changes exactly when a file's
        bytes, a file's name or the set of files changes; files that cannot be read as parquet
        are named in the metadata."""
        manifest_path = paths.manifest(spec.name)
        known = (
            known_versions(manifest_from_json(storage.read_bytes(manifest_path)))
            if storage.exists(manifest_path)
            else {}
        )
        access = hub.access()
        listing = scan_source(spec, access, known)
        files = listing.files
        seen = {version for _, version in known.values()}
        unreadable = list(listing.unreadable)
        for file in files:
            if file.version in seen:
                continue  # discovery read this version's footer already
            try:
                read_footer(spec, file, access)
            except SourceError as error:
                unreadable.append((file.path, str(error)))
        text = "\n".join(f"{f.path}@{f.version}" for f in files)
        metadata = {
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "revision": (files[0].revision or "") if files else "",
            "unreadable_files": len(unreadable),
        }
        if unreadable:
            metadata["unreadable"] = MetadataValue.md(
                "\n".join(f"- `{path}`: {why}" for path, why in unreadable)
            )
        return ObserveResult(
            data_version=DataVersion(hashlib.sha256(text.encode()).hexdigest()[:16]),
            metadata=metadata,
        )

    return source
