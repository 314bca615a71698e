"""The Kubernetes Jobs ``k8s_job_executor`` would launch for one run, built without a cluster.

A run's steps come from Dagster's own execution plan of the run's assets; each step's Job is
built the way dagster-k8s's ``K8sStepHandler.launch_step`` builds it: the run launcher's
settings, merged with the code location's container context, merged with the step's
``dagster-k8s/config`` op tag (``get_user_defined_k8s_config``), then
``construct_dagster_k8s_job``. What differs from a live run is only what a live run adds:
its run id (here a fixed one derived from the location and run), the serialized step
arguments (``DAGSTER_COMPRESSED_EXECUTE_STEP_ARGS``), and any ``execution.config`` of the
run's own config (none by default).

Reads: the definitions and the chart deployment given. Writes: nothing. Guarantees: the pods
are dagster-k8s's own objects (``V1Job``); :func:`to_yaml` prints them as the Kubernetes API
would receive them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import kubernetes.client
import yaml
from dagster import AssetKey, Definitions, JobDefinition
from dagster._core.execution.api import create_execution_plan
from dagster_k8s import construct_dagster_k8s_job
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import get_k8s_job_name, get_user_defined_k8s_config

from clip_assets.deploy.helm_values import ChartDeployment

#: ``ExecuteStepArgs.get_command_args(skip_serialized_namedtuple=True)`` with the image's
#: default entry point: the step's arguments travel in an environment variable instead.
STEP_COMMAND = ("dagster", "api", "execute_step")
RUNS = ("partition", "index")


def run_assets(defs: Definitions, run: str) -> list[AssetKey]:
    """The assets one run materialises: a ``partition`` run takes every partitioned asset
    (one partition range at a time); an ``index`` run the whole-dataset ones."""
    if run not in RUNS:
        raise ValueError(f"run is one of {', '.join(RUNS)}, not {run!r}")
    graph = defs.resolve_asset_graph()
    keys = graph.materializable_asset_keys
    partitioned = {key for key in keys if graph.get(key).partitions_def is not None}
    return sorted(partitioned if run == "partition" else keys - partitioned)


def run_job(defs: Definitions, assets: Sequence[AssetKey]) -> JobDefinition:
    """The implicit asset job, subset to ``assets`` and their checks: what a backfill, a
    sensor's run request or the UI's Materialize button launches."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.get_subset(asset_selection=set(assets))


def step_jobs(job: JobDefinition, chart: ChartDeployment) -> list[kubernetes.client.V1Job]:
    """One Kubernetes Job per step of a run of ``job``, in execution order."""
    run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"clip-assets:{chart.location}:{job.name}"))
    base = chart.launcher_context.merge(chart.location_context)
    plan = create_execution_plan(job)
    jobs = []
    for step in plan.get_steps_to_execute_in_topo_order():
        context = base.merge(
            K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step.tags))
        )
        name = f"dagster-step-{get_k8s_job_name(run_id, step.key)}"
        jobs.append(
            construct_dagster_k8s_job(
                job_config=chart.job_config(),
                args=list(STEP_COMMAND),
                job_name=name,
                pod_name=name,
                component="step_worker",
                user_defined_k8s_config=context.run_k8s_config,
                labels={
                    "dagster/job": job.name,
                    "dagster/op": step.key,
                    "dagster/run-id": run_id,
                    "dagster/code-location": chart.location,
                },
                env_vars=[
                    {"name": "DAGSTER_RUN_JOB_NAME", "value": job.name},
                    {"name": "DAGSTER_RUN_STEP_KEY", "value": step.key},
                ],
            )
        )
    return jobs


def to_yaml(jobs: Sequence[kubernetes.client.V1Job]) -> str:
    """The Jobs as one YAML stream, in the Kubernetes API's own field names."""
    client = kubernetes.client.ApiClient()
    documents = [client.sanitize_for_serialization(job) for job in jobs]
    return yaml.safe_dump_all(documents, sort_keys=False)


@contextmanager
def code_server_env(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` set in this process, then restored: op tags are computed where the definitions
    load (the GPU type comes from the environment), so they load as in the code server."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def render_run(load: Callable[[], Definitions], chart: ChartDeployment, run: str) -> str:
    """The YAML of the Jobs one ``run`` (``partition`` or ``index``) launches, with the
    definitions ``load`` builds in the code server's environment."""
    with code_server_env(chart.env):
        defs = load()
    return to_yaml(step_jobs(run_job(defs, run_assets(defs, run)), chart))
