"""The automation operand Dagster lacks: a run of the wave failed and waits for its retry.

Dagster's ``in_progress()`` counts a run until it fails, and its automatic retry once the
run-retry daemon has launched it; a backfill counts a failed run's partitions as failed at
once. In between, the partitions that run was making are in progress nowhere, and a rebuild
gate built on ``in_progress()`` opens. In the million-row rehearsal (R10) a run ended by a stop
was marked failed when the daemon came back, its retry was created a second later, and in that
second the rebuild sensor started an index build over 612,263 of 823,854 vectors while the
retry embedded the rest: two index builds for one backfill, and a release from the partial one
had its recall check not failed.
"""

from __future__ import annotations

import datetime

from dagster import (
    AssetKey,
    AutomationCondition,
    AutomationContext,
    AutomationResult,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

#: How far back a failed run is looked for: the retry daemon launches a retry within seconds,
#: so a run still waiting after this long waits for a daemon that is not running.
LOOKBACK = datetime.timedelta(hours=6)


class AwaitingRetry(AutomationCondition[AssetKey]):
    """True for the whole target while a run that was making any of ``upstream`` has failed and
    the run-retry daemon will retry it but has not launched the retry yet (Dagster's
    ``is_complete_and_waiting_to_retry``). Reads only the failed runs tagged to be retried and
    updated within :data:`LOOKBACK`, so a tick's cost follows recent failures, not history.

    Not serializable: the sensor evaluating it runs on the code server
    (``use_user_code_server``).
    """

    def __init__(self, upstream: frozenset[AssetKey]) -> None:
        self._upstream = upstream

    @property
    def name(self) -> str:
        return "awaiting_retry"

    @property
    def description(self) -> str:
        return "A run of an upstream partition failed and its automatic retry is not yet launched"

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        instance = context.asset_graph_view.instance
        # Dagster's own answer, as its backfills use it: the run's selection, else its plan
        # snapshot, else its planned events; cached for the tick.
        queryer = context.asset_graph_view.get_inner_queryer_for_back_compat()
        failed = instance.get_runs(
            RunsFilter(
                statuses=[DagsterRunStatus.FAILURE],
                tags={WILL_RETRY_TAG: "true"},
                updated_after=context.evaluation_time - LOOKBACK,
            )
        )
        waiting = any(
            run.is_complete_and_waiting_to_retry
            and self._upstream & queryer.get_planned_materializations_for_run(run.run_id)
            for run in failed
        )
        true_subset = context.candidate_subset if waiting else context.get_empty_subset()
        return AutomationResult(context=context, true_subset=true_subset)
