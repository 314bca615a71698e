"""Running a partitioned asset over every partition of its run, one partition at a time.

A backfill with ``BackfillPolicy.multi_run`` hands one run several partitions so expensive
set-up (the CLIP model, an HTTP client pool) happens once. Each partition's file is written
atomically when that partition is done. If some partitions fail, the finished ones are still
recorded as materialised, and the step fails naming the ones that did not.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
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
    summarize: Callable[[dict[str, PartitionMetadata]], dict[str, Any]] | None = None,
) -> MaterializeResult:
    """Calls ``materialize_one(key)`` for each partition key of the run, in key order.

    With one partition its metadata is the materialisation's; with several, ``summarize``
    folds them (default: the per-partition metadata as JSON) since Dagster records the same
    metadata for every partition of a ranged run.
    """
    keys = sorted(context.partition_keys)
    if len(keys) == 1:
        return MaterializeResult(metadata=dict(materialize_one(keys[0])))
    done: dict[str, PartitionMetadata] = {}
    failed: dict[str, str] = {}
    for key in keys:
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
    metadata = summarize(done) if summarize else {}
    metadata["partitions"] = MetadataValue.json(
        {key: {k: _plain(v) for k, v in md.items()} for key, md in done.items()}
    )
    return MaterializeResult(metadata=metadata)


def _plain(value: Any) -> Any:
    """A JSON-able form of a metadata value (MetadataValue objects carry ``.value``)."""
    value = getattr(value, "value", value)
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
