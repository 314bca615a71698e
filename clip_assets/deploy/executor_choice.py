"""Which Dagster executor runs a run's steps, chosen per deployment by configuration.

``CLIP_ASSETS_EXECUTOR`` names it: ``in_process`` (every step in the run's process: a laptop,
a debugger), ``multiprocess`` (a process per step on one machine), ``k8s`` (a Kubernetes pod per
step through dagster-k8s's ``k8s_job_executor``, sized by each op's ``dagster-k8s/config``
tag). Unset, Dagster's default applies: multiprocess, or in-process when a run's config says
``execution: {config: {in_process: {}}}``. The chosen executor's own options (``max_concurrent``,
the k8s executor's ``per_step_k8s_config``, ...) still come from run config under
``execution: {config: ...}``. The same definitions thus run everywhere; only the environment
of the code location differs.

Reads: the environment given (default ``os.environ``). Writes: nothing. Guarantees: an unknown
name is refused with the known ones listed, never silently replaced by a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import (
    ExecutorDefinition,
    in_process_executor,
    multi_or_in_process_executor,
    multiprocess_executor,
)
from dagster_k8s import k8s_job_executor

EXECUTOR_ENV = "CLIP_ASSETS_EXECUTOR"
EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
    "k8s": k8s_job_executor,
}


def executor_from_env(environ: Mapping[str, str] = os.environ) -> ExecutorDefinition:
    """The executor ``CLIP_ASSETS_EXECUTOR`` names, or Dagster's default when it is unset."""
    name = environ.get(EXECUTOR_ENV, "").strip()
    if not name:
        return multi_or_in_process_executor
    if name not in EXECUTORS:
        raise ValueError(
            f"{EXECUTOR_ENV}={name!r} names no executor; choose one of {', '.join(EXECUTORS)}"
        )
    return EXECUTORS[name]
