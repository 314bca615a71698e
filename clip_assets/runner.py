"""Materialising a whole dataset through Dagster from one call: the CLI's ``run`` and the demo.

It does what a person does in the UI: add the partitions the source holds, backfill
metadata -> images -> embeddings several partitions per run, then build the index, the id
mapping and the release. Runs are recorded in the given instance, so ``dagster dev`` on the
same ``DAGSTER_HOME`` shows them with their metadata and lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult, materialize

from clip_assets import paths
from clip_assets.assets.dataset import PARTITIONS_PER_RUN, DatasetGraph
from clip_assets.assets.discovery import contiguous_runs, plan_partitions
from clip_assets.assets.index_checks import build_checks
from clip_assets.definitions import dataset_assets
from clip_assets.registry import DatasetSpec
from clip_assets.sensors import RANGE_END_TAG, RANGE_START_TAG
from clip_assets.source.files import HubAccess
from resources.hub import HubResource
from resources.storage import StorageResource

PARTITIONED_STAGES = ("metadata", "images", "embeddings")
#: Dagster's console logger at INFO: the asset logs (progress, counts) without engine chatter.
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
WHOLE_STAGES = ("faiss_index", "id_mapping", "hf_release")


@dataclass(frozen=True)
class DatasetRun:
    """What one call materialised."""

    partitions: list[str]
    partition_runs: int
    failed_ranges: list[tuple[str, str]]


def run_dataset(
    spec: DatasetSpec,
    resources: dict[str, object],
    instance: DagsterInstance,
    *,
    partitions_per_run: int = PARTITIONS_PER_RUN,
    log: Callable[[str], None] = print,
) -> DatasetRun:
    """Adds the source's partitions, materialises those without embeddings, then the
    whole-dataset assets. Partitions that fail are reported; the index is built from the
    partitions that succeeded, as the asset would in the UI."""
    graph = DatasetGraph(spec)
    storage: StorageResource = resources["storage"]  # type: ignore[assignment]
    hub = resources.get("hub")
    access = hub.access() if isinstance(hub, HubResource) else HubAccess()
    existing = list(instance.get_dynamic_partitions(graph.partitions.name))
    plan = plan_partitions(spec, storage, existing, access)
    if plan.delete:
        for key in plan.delete:
            instance.delete_dynamic_partition(graph.partitions.name, key)
    if plan.add:
        instance.add_dynamic_partitions(graph.partitions.name, plan.add)
    order = list(instance.get_dynamic_partitions(graph.partitions.name))
    done = {paths.key_of(p) for p in storage.list(f"{spec.name}/embeddings")}
    todo = sorted(set(plan.run) | {key for key in order if key not in done})
    log(f"{spec.name}: {len(order)} partitions, {len(todo)} to materialise")
    assets = dataset_assets(graph) + build_checks(graph)

    def run(stages: tuple[str, ...], **options: Any) -> ExecuteInProcessResult:
        return materialize(
            assets,
            instance=instance,
            resources=resources,
            run_config=QUIET,
            selection=[graph.key(stage) for stage in stages],
            **options,
        )

    failed: list[tuple[str, str]] = []
    ranges = contiguous_runs(order, todo, partitions_per_run)
    for first, last in ranges:
        result = run(
            PARTITIONED_STAGES,
            partition_key=first if first == last else None,
            tags={} if first == last else {RANGE_START_TAG: first, RANGE_END_TAG: last},
            raise_on_error=False,
        )
        log(f"  partitions {first}..{last}: {'ok' if result.success else 'FAILED'}")
        if not result.success:
            failed.append((first, last))
    result = run(WHOLE_STAGES)
    log(f"  faiss_index, id_mapping, hf_release: {'ok' if result.success else 'FAILED'}")
    return DatasetRun(partitions=order, partition_runs=len(ranges), failed_ranges=failed)
