"""Running a partitioned asset over every partition of its run, one partition at a time.

A backfill with ``BackfillPolicy.multi_run`` hands one run several partitions so expensive
set-up (the CLIP model, an HTTP client pool) happens once. Each partition's file is written
atomically when that partition is done, and each partition's materialization carries its own
metadata (rows, success rate, throughput...) and ``stage_s``, the seconds spent inside the
stage for it, so the UI plots them across partitions and a run's wall time splits into stage
work and Dagster's bookkeeping. If some partitions fail, the finished ones are still recorded
as materialised, and the step fails naming the ones that did not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetMaterialization,
    Failure,
    MaterializeResult,
    MetadataValue,
)

PartitionMetadata = Mapping[str, Any]


@dataclass(frozen=True)
class PartitionCheck:
    """An asset check judged once per partition, after that partition is materialised:
    ``judge(key)`` returns whether it passed and what it measured. Its spec carries the
    asset's partitions, so the UI shows each partition's own result."""

    name: str
    judge: Callable[[str], tuple[bool, dict[str, Any]]]
    severity: AssetCheckSeverity = AssetCheckSeverity.WARN

    def results(self, context: AssetExecutionContext, keys: list[str]) -> list[AssetCheckResult]:
        """Each partition's evaluation (logged per partition in a ranged run, whose returned
        result Dagster cannot tie to one partition), and the result the step returns."""
        verdicts = {key: self.judge(key) for key in keys}
        if len(keys) > 1:
            for key, (passed, metadata) in verdicts.items():
                context.log_event(
                    AssetCheckEvaluation(
                        asset_key=context.asset_key,
                        check_name=self.name,
                        passed=passed,
                        partition=key,
                        severity=self.severity,
                        metadata=metadata,
                    )
                )
        failing = [key for key, (passed, _) in verdicts.items() if not passed]
        summary = verdicts[keys[0]][1] if len(keys) == 1 else {"partitions": len(keys)}
        return [
            AssetCheckResult(
                check_name=self.name,
                passed=not failing,
                severity=self.severity,
                metadata={**summary, "failing_partitions": ", ".join(failing) or "none"},
            )
        ]


def run_partitions(
    context: AssetExecutionContext,
    materialize_one: Callable[[str], PartitionMetadata],
    check_results: Callable[[], list[AssetCheckResult]] | None = None,
    partition_check: PartitionCheck | None = None,
) -> MaterializeResult:
    """Calls ``materialize_one(key)`` for each partition key of the run, in key order, and
    records what it returns as that partition's metadata. ``check_results`` is asked once
    every partition is done; ``partition_check`` judges each partition."""
    keys = sorted(context.partition_keys)
    done: dict[str, PartitionMetadata] = {}
    failed: dict[str, str] = {}

    def timed(key: str) -> PartitionMetadata:
        started = time.monotonic()
        metadata = materialize_one(key)
        return {**metadata, "stage_s": round(time.monotonic() - started, 3)}

    for key in keys:
        if len(keys) == 1:
            done[key] = timed(key)
            break
        try:
            done[key] = timed(key)
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
    results = check_results() if check_results else []
    if partition_check is not None:
        results += partition_check.results(context, keys)
    return MaterializeResult(check_results=results or None)
