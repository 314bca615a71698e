"""``<ds>/id_mapping``: faiss id -> uid, url, caption, consistent with the index."""

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from clip_assets import paths
from clip_assets.graph.automation import rebuild_condition
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.index.mapping import build_id_mapping
from clip_assets.index.shards import read_shard_list
from resources.storage import StorageResource


def build_id_mapping_asset(graph: DatasetGraph) -> AssetsDefinition:
    ds = graph.name

    @asset(
        **graph.whole_stage("id_mapping", ["faiss_index", "metadata"]),
        kinds={"parquet"},
        automation_condition=rebuild_condition(graph, "id_mapping"),
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

        rows = files = 0
        with storage.scratch("id_mapping") as work:
            for number, chunk in enumerate(
                build_id_mapping(shard_list, embeddings_of, captions_of)
            ):
                pq.write_table(chunk, work / paths.id_mapping_name(number), compression="zstd")
                rows, files = rows + chunk.num_rows, files + 1
            storage.replace_folder(work, paths.id_mapping_dir(ds))
        context.log.info(f"id_mapping: {rows} ids in {files} files")
        return MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "files": files,
                "path": MetadataValue.path(storage.uri(paths.id_mapping_dir(ds))),
            }
        )

    return id_mapping
