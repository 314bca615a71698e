"""Partitions a failed neighbour held back: run again alone, once, by a sensor.

A ranged run (up to 16 partitions, so the model loads once) is one Dagster step per stage, and
a step fails as a whole: when one partition fails in ``metadata`` or ``images``
(``graph.partition_runs`` records the others' materializations, then fails the step naming
the bad ones), the later stages of the whole range are skipped. A partition that fails for
good would thus keep its neighbours out of the index forever, and a rerun of the range fails
the same way. This sensor watches failed ranged runs of its dataset; for each, the partitions
the step did not name as failed and whose embeddings are still missing are requested again,
each in a run of its own, tagged with the run they come from. The named ones are left
failed, for the index to leave out within the dataset's tolerated share and for a person to
look at. Single-partition runs are never split, so nothing loops.
"""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import (
    AssetPartitionStatus,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, DatasetGraph
from clip_assets.graph.partitions import RANGE_END_TAG, RANGE_START_TAG

#: Tag of a run that reruns one partition a failed range held back; its value is that run.
HELD_BY_TAG = "clip_assets/held_by_run"
_PARENT_TAG = "dagster/parent_run_id"


def held_partitions_sensor_name(graph: DatasetGraph) -> str:
    return f"{graph.name}_rerun_held_partitions"


def failed_in_run(instance: DagsterInstance, graph: DatasetGraph, run_id: str) -> set[str] | None:
    """Partitions the run's failed steps of this dataset named as failed
    (``failed_partitions``); None when none of its steps failed, or one failed without naming
    any (a crash, a failure of every partition)."""
    steps = {f"{graph.name}__{stage}" for stage in PARTITIONED_STAGES}
    named: set[str] = set()
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        if entry.dagster_event.step_key not in steps:
            continue
        failure = entry.dagster_event.step_failure_data.user_failure_data
        value = failure.metadata.get("failed_partitions") if failure is not None else None
        if value is None:
            return None
        named |= set(value.value)
    return named or None


def held_back(
    instance: DagsterInstance,
    graph: DatasetGraph,
    order: list[str],
    run_tags: dict[str, str],
    run_id: str,
) -> list[str]:
    """The partitions of the failed ranged run (within ``order``, the dataset's partitions)
    that did not fail themselves and still lack embeddings, in partition order."""
    failed = failed_in_run(instance, graph, run_id)
    if not failed:
        return []
    first, last = run_tags[RANGE_START_TAG], run_tags[RANGE_END_TAG]
    keys = [key for key in order if first <= key <= last and key not in failed]
    statuses = instance.get_status_by_partition(graph.key("embeddings"), keys, graph.partitions)
    done = AssetPartitionStatus.MATERIALIZED
    return [key for key in keys if (statuses or {}).get(key) != done]


def build_held_partitions_sensor(graph: DatasetGraph) -> SensorDefinition:
    """Requests, once per failed ranged run, a run of its own for each partition that run held
    back (see the module docstring)."""
    stages = graph.keys(PARTITIONED_STAGES)

    @sensor(
        name=held_partitions_sensor_name(graph),
        asset_selection=stages,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs alone the {graph.name} partitions that a failed neighbour kept from "
        "finishing in a ranged run.",
    )
    def rerun_held_partitions(context: SensorEvaluationContext) -> SensorResult:
        after = float(context.cursor) if context.cursor else 0.0
        instance = context.instance
        records = instance.get_run_records(
            RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=_utc(after)),
            order_by="update_timestamp",
            ascending=True,
        )
        requests, newest = [], after
        order = sorted(instance.get_dynamic_partitions(graph.partitions.name)) if records else []
        for record in records:
            newest = max(newest, record.update_timestamp.timestamp())
            run = record.dagster_run
            if RANGE_START_TAG not in run.tags:
                continue
            if instance.get_runs(RunsFilter(tags={_PARENT_TAG: run.run_id}), limit=1):
                continue  # run retries started it again; that retry is judged instead
            for key in held_back(instance, graph, order, dict(run.tags), run.run_id):
                requests.append(
                    RunRequest(
                        run_key=f"{run.run_id}:{key}",
                        asset_selection=stages,
                        partition_key=key,
                        tags={HELD_BY_TAG: run.run_id},
                    )
                )
        if requests:
            context.log.info(f"{graph.name}: {len(requests)} held-back partitions to run alone")
        return SensorResult(
            run_requests=requests,
            cursor=str(newest),
            skip_reason=None if requests else "no failed range held partitions back",
        )

    return rerun_held_partitions


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)
