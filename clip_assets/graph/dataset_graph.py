"""What every asset of one dataset's graph shares: its spec, partitions and asset keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, DynamicPartitionsDefinition

from clip_assets import __version__
from clip_assets.deploy.step_sizes import accelerator_from_env, k8s_op_tags
from clip_assets.graph.partitions import backfill_policy, shard_partitions
from clip_assets.registry import DatasetSpec

#: The stages of every dataset's graph, in data order (the asset key's last part).
PARTITIONED_STAGES = ("metadata", "images", "embeddings")
WHOLE_DATASET_STAGES = ("faiss_index", "id_mapping", "hf_release")


@dataclass(frozen=True)
class DatasetGraph:
    """One dataset's asset graph: keys ``<ds>/<stage>``, partitions ``<ds>_shards``.

    ``code_versions`` overrides the package version for stages whose output depends on
    settings (``clip_assets.graph.lineage``); the factory fills it from the resources.
    """

    spec: DatasetSpec
    code_versions: tuple[tuple[str, str], ...] = field(default=())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def partitions(self) -> DynamicPartitionsDefinition:
        return shard_partitions(self.spec.name)

    def key(self, stage: str) -> AssetKey:
        return AssetKey([self.spec.name, stage])

    def keys(self, stages: tuple[str, ...]) -> list[AssetKey]:
        return [self.key(stage) for stage in stages]

    def op_tags(self, step: str) -> dict[str, str]:
        """The pod size of ``step`` (a stage, or ``checks``) on Kubernetes: read by
        ``k8s_job_executor``, ignored by the other executors."""
        return k8s_op_tags(step, self.spec.rows_per_partition, accelerator_from_env())

    def query_set_key(self, query_set: str) -> AssetKey:
        """``<ds>/queries/<name>``: a named query set of the registry, observed."""
        return AssetKey([self.spec.name, "queries", query_set])

    def retrieval_key(self, query_set: str) -> AssetKey:
        """``<ds>/retrieval/<name>``: that query set's hits from the index."""
        return AssetKey([self.spec.name, "retrieval", query_set])

    def partitioned_stage(self, stage: str, upstream: str) -> dict[str, Any]:
        """``@asset`` arguments of a per-partition stage reading ``upstream``'s partition."""
        return {
            **self.whole_stage(stage, [upstream]),
            "partitions_def": self.partitions,
            "backfill_policy": backfill_policy(),
        }

    def whole_stage(self, stage: str, upstream: list[str]) -> dict[str, Any]:
        """``@asset`` arguments of a stage over the whole dataset."""
        return {
            "key": self.key(stage),
            "deps": [self.key(name) for name in upstream],
            "group_name": self.spec.name,
            "code_version": dict(self.code_versions).get(stage, __version__),
            "op_tags": self.op_tags(stage),
        }
