"""``<ds>/metadata``: one source slice as normalised rows."""

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from clip_assets import paths
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.partition_runs import run_partitions
from clip_assets.source.files import SourceFile, fetch_source_file
from clip_assets.source.reader import read_slice
from clip_assets.source.slices import manifest_from_json
from resources.hub import HubResource
from resources.storage import StorageResource


def build_metadata_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec

    @asset(**graph.partitioned_stage("metadata", upstream="source"), kinds={"parquet"})
    def metadata(
        context: AssetExecutionContext, storage: StorageResource, hub: HubResource
    ) -> MaterializeResult:
        """Normalised URL rows of one source slice.

        Reads: the partition manifest and the slice's rows of the source parquet file at the
        version the manifest pinned. Writes: ``<ds>/metadata/<partition>.parquet``
        (METADATA_SCHEMA). Guarantees: one row per source row, in source order, with the
        source file, revision and row number of each.
        """
        manifest = manifest_from_json(storage.read_bytes(paths.manifest(spec.name)))

        def materialize_one(key: str) -> dict:
            if key not in manifest:
                raise KeyError(
                    f"partition {key} is not in {storage.uri(paths.manifest(spec.name))}; "
                    "partitions are added by the discovery sensor (or `clip-assets discover`)"
                )
            piece = manifest[key]
            listed = SourceFile(piece.file, piece.version, piece.revision, size=0)
            local = fetch_source_file(spec, listed, paths.cache_dir(), hub.access())
            table = read_slice(spec, piece, local)
            storage.write_table(paths.metadata(spec.name, key), table)
            return {
                "dagster/row_count": table.num_rows,
                "source_file": piece.file,
                "source_revision": piece.revision or "",
                "rows": f"{piece.start}..{piece.stop}",
                "path": MetadataValue.path(storage.uri(paths.metadata(spec.name, key))),
            }

        return run_partitions(context, materialize_one)

    return metadata
