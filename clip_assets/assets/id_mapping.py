"""``<ds>/id_mapping``: faiss id -> uid, url, caption, consistent with the index."""

import pyarrow as pa
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from clip_assets import paths
from clip_assets.graph.automation import REBUILD_ON_NEW_INPUTS
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.index.mapping import build_id_mapping
from clip_assets.index.shards import read_shard_list
from resources.storage import StorageResource


def build_id_mapping_asset(graph: DatasetGraph) -> AssetsDefinition:
    ds = graph.name

    @asset(
        **graph.whole_stage("id_mapping", ["faiss_index", "metadata"]),
        kinds={"parquet"},
        automation_condition=REBUILD_ON_NEW_INPUTS,
    )
    def id_mapping(context: AssetExecutionContext, storage: StorageResource) -> MaterializeResult:
        """The row each faiss id stands for.

        Reads: ``<ds>/index/shards.json`` (the partitions the index holds, in id order), those
        partitions' embeddings (uid, url) and metadata (caption). Writes:
        ``<ds>/id_mapping/<n>.parquet`` (i, uid, url, text). Guarantees: ids 0..n-1 exactly
        once, in order; id i is row i of the index's partition order, by construction.
        """
        shard_list = read_shard_list(storage.read_bytes(paths.shard_list(ds)))

        def embeddings_of(key: str) -> pa.Table:
            return storage.read_table(paths.embeddings(ds, key), columns=["uid", "url"])

        def captions_of(key: str) -> pa.Table:
            return storage.read_table(paths.metadata(ds, key), columns=["uid", "text"])

        written: list[str] = []
        rows = 0
        for number, chunk in enumerate(build_id_mapping(shard_list, embeddings_of, captions_of)):
            path = paths.id_mapping_file(ds, number)
            storage.write_table(path, chunk)
            written.append(path)
            rows += chunk.num_rows
        for stale in set(storage.list(paths.id_mapping_dir(ds))) - set(written):
            storage.delete(stale)
        context.log.info(f"id_mapping: {rows} ids in {len(written)} files")
        return MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "files": len(written),
                "path": MetadataValue.path(storage.uri(paths.id_mapping_dir(ds))),
            }
        )

    return id_mapping
