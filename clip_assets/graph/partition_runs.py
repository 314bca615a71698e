"""Running a partitioned asset over every partition of its run, one partition at a time.

A backfill with ``BackfillPolicy.multi_run`` hands one run several partitions so expensive
set-up (the CLIP model, an HTTP client pool) happens once. Each partition's file is written
atomically when that partition is done, and each partition's materialization carries its own
metadata (rows, success rate, throughput...), so the UI plots them across partitions. If some
partitions fail, the finished ones are still recorded as materialised, and the step fails
naming the ones that did not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetMaterialization,
    Failure,
    MaterializeResult,
    MetadataValue,
)

PartitionMetadata = Mapping[str, Any]


def run_partitions(
    context: AssetExecutionContext,
    materialize_one: Callable[[str], PartitionMetadata],
    check_results: Callable[[], list[AssetCheckResult]] | None = None,
) -> MaterializeResult:
    """Calls ``materialize_one(key)`` for each partition key of the run, in key order, and
    records what it returns as that partition's metadata. ``check_results`` is asked once
    every partition is done."""
    keys = sorted(context.partition_keys)
    done: dict[str, PartitionMetadata] = {}
    failed: dict[str, str] = {}
    for key in keys:
        if len(keys) == 1:
            done[key] = materialize_one(key)
            break
        try:
            done[key] = materialize_one(key)
        except Exception as error:
            # Keep going: one bad shard must not throw away the work of the others.
            context.log.exception(f"partition {key} failed")
            failed[key] = f"{type(error).__name__}: {error}"
    if failed:
        for key, metadata in done.items():
            context.log_event(
                AssetMaterialization(asset_key=context.asset_key, partition=key, metadata=metadata)
            )
        raise Failure(
            description=f"{len(failed)} of {len(keys)} partitions failed: {', '.join(failed)}",
            metadata={"failed_partitions": MetadataValue.json(failed)},
        )
    for key, metadata in done.items():
        context.add_asset_metadata(dict(metadata), partition_key=key)
    return MaterializeResult(check_results=check_results() if check_results else None)
