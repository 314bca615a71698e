"""Asset checks: one per property, blocking where a bad result must not flow on to a release.

The embeddings' vector properties are checked inside the embeddings asset, before a file is
written (see ``embeddings.py``): a partition with a NaN or an off-norm vector never reaches
storage. The checks here guard the whole-dataset assets, whose failures would otherwise be
published: blocking, so a failed check stops downstream assets in the same run and the
release's automation waits for a passing index.
"""

import json

import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetChecksDefinition, Config, asset_check
from pydantic import Field

from clip_assets import paths
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.index.shards import read_shard_list
from clip_assets.index.verification import check_id_mapping, check_index_size, check_recall
from resources.storage import StorageResource


class RecallCheckConfig(Config):
    """The recall the released index must reach."""

    threshold: float = Field(default=0.9, description="Minimum recall@10, every query set.")


def _result(outcome: tuple[bool, dict]) -> AssetCheckResult:
    passed, metadata = outcome
    return AssetCheckResult(
        passed=passed,
        metadata={
            k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in metadata.items()
        },
    )


def build_index_checks(graph: DatasetGraph) -> list[AssetChecksDefinition]:
    """The blocking checks of one dataset's faiss_index and id_mapping."""
    ds = graph.name
    tags = graph.op_tags("checks")

    @asset_check(
        asset=graph.key("faiss_index"), blocking=True, op_tags=tags, name="size_equals_ok_images"
    )
    def size_equals_ok_images(storage: StorageResource) -> AssetCheckResult:
        """The index holds one vector per ``ok`` image of the partitions it indexed."""
        expected = 0
        shard_list = read_shard_list(storage.read_bytes(paths.shard_list(ds)))
        for entry in shard_list:
            status = storage.read_table(paths.images(ds, entry.name), ["status"]).column("status")
            expected += pc.sum(pc.equal(status, "ok")).as_py() or 0
        with storage.local_dir(paths.index_dir(ds)) as index_dir:
            return _result(check_index_size(index_dir, expected))

    @asset_check(asset=graph.key("faiss_index"), blocking=True, op_tags=tags, name="recall_at_10")
    def recall_at_10(config: RecallCheckConfig, storage: StorageResource) -> AssetCheckResult:
        """Measured recall@10 against exact search is at or above the threshold."""
        infos = json.loads(storage.read_bytes(paths.index_file(ds, paths.INFOS_NAME)))
        return _result(check_recall(infos, config.threshold))

    @asset_check(
        asset=graph.key("id_mapping"), blocking=True, op_tags=tags, name="ids_cover_index_once"
    )
    def ids_cover_index_once(storage: StorageResource) -> AssetCheckResult:
        """Ids 0..n-1 appear once each, in order, and agree with the embeddings at each id."""
        with (
            storage.local_dir(paths.index_dir(ds)) as index_dir,
            storage.local_dir(paths.id_mapping_dir(ds)) as mapping_dir,
        ):
            return _result(
                check_id_mapping(
                    index_dir,
                    sorted(mapping_dir.glob("*.parquet")),
                    lambda key: storage.read_table(paths.embeddings(ds, key), ["uid", "url"]),
                )
            )

    return [size_equals_ok_images, recall_at_10, ids_cover_index_once]
