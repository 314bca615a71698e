"""What every asset of one dataset's graph shares: its spec, partitions and asset keys."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import AssetKey, BackfillPolicy, DynamicPartitionsDefinition

from clip_assets import __version__
from clip_assets.registry import DatasetSpec

#: Partitions one backfill run serves: the model and client pools load once per run.
PARTITIONS_PER_RUN = 16
CACHE_ENV = "CLIP_ASSETS_CACHE"


@dataclass(frozen=True)
class DatasetGraph:
    """One dataset's asset graph: keys ``<ds>/<stage>``, partitions ``<ds>_shards``."""

    spec: DatasetSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def partitions(self) -> DynamicPartitionsDefinition:
        return DynamicPartitionsDefinition(name=f"{self.spec.name}_shards")

    @property
    def backfill_policy(self) -> BackfillPolicy:
        return BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)

    def key(self, stage: str) -> AssetKey:
        return AssetKey([self.spec.name, stage])

    def partitioned_stage(self, stage: str, upstream: str) -> dict[str, Any]:
        """``@asset`` arguments of a per-partition stage reading ``upstream``'s partition."""
        return {
            **self.whole_stage(stage, [upstream]),
            "partitions_def": self.partitions,
            "backfill_policy": self.backfill_policy,
        }

    def whole_stage(self, stage: str, upstream: list[str]) -> dict[str, Any]:
        """``@asset`` arguments of a stage over the whole dataset."""
        return {
            "key": self.key(stage),
            "deps": [self.key(name) for name in upstream],
            "group_name": self.spec.name,
            "code_version": __version__,
        }


def cache_dir() -> Path:
    """Local cache for source files fetched from GCS (the Hub uses its own cache)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "clip-assets")).expanduser()
