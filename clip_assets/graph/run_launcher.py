"""Dagster's default run launcher, plus the health check run monitoring needs on one machine.

``DefaultRunLauncher`` starts each run in a process of the code server but cannot tell the
daemon whether that process still lives, so a run whose worker was killed (``kill -9``, the
OOM killer, a reboot) stays STARTED forever. :class:`MonitoredRunLauncher` answers run
monitoring's ``check_run_worker_health`` from the worker's own "Started process for run (pid:
N)" event and ``/proc``: a pid that is gone, a zombie, or a pid reused by a process that
started after the run did, is a dead worker, and the daemon marks the run failed (then run
retries may start it again). Valid where the daemon shares the machine with the run workers,
which is where ``DefaultRunLauncher`` runs them; on Kubernetes use ``K8sRunLauncher``.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

from clip_assets.processes import process_start_time

_STARTED = "Started process for run"
#: A worker started this long after the run's recorded start is another process on that pid.
_START_SLACK_S = 5.0


class MonitoredRunLauncher(DefaultRunLauncher):
    """Launches runs as ``DefaultRunLauncher`` does and reports whether their workers live."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self._worker_pid(run.run_id)
        if pid is None:
            # The worker records its pid before it marks the run started; until then there is
            # nothing to judge, and a false "failed" would kill a healthy run.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker pid not recorded yet")
        record = self._instance.get_run_record_by_id(run.run_id)
        started = process_start_time(pid)
        run_start = record.start_time if record is not None else None
        if started is None or (run_start is not None and started > run_start + _START_SLACK_S):
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"the run worker process (pid {pid}) is gone: killed or crashed",
                run_worker_id=str(pid),
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))

    def _worker_pid(self, run_id: str) -> int | None:
        for entry in self._instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            if event is None or not (event.message or "").startswith(_STARTED):
                continue
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value)
        return None
