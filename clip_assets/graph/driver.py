"""Driving one dataset's graph: partition plans, the runs over them, and a whole run end to end.

Used by the discovery sensor, ``clip-assets discover``, ``clip-assets run`` and the demo, so
all four add partitions and group them into runs the same way:

- :func:`plan_partitions` looks at the source, saves the partition manifest, and says which
  keys the instance lacks, which it should drop and which must be (re)materialised;
- :func:`partition_ranges` groups the keys to materialise into ranged runs (the model loads
  once per run), each described by :func:`~clip_assets.graph.partitions.range_request`;
- :func:`run_dataset` does what a person does in the UI: apply the plan, backfill metadata ->
  images -> embeddings range by range, then build the index, the id mapping and the release.

Resources given here may hold ``EnvVar`` values (the token): outside a run they are resolved
through Dagster's own ``build_resources`` before use, never read directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunsFilter,
    build_resources,
    define_asset_job,
)

from clip_assets import paths
from clip_assets.graph.automation import INDEX_BUILD_TAG
from clip_assets.graph.dataset_graph import (
    PARTITIONED_STAGES,
    WHOLE_DATASET_STAGES,
    DatasetGraph,
)
from clip_assets.graph.partitions import (
    PARTITION_TAG,
    PARTITIONS_PER_RUN,
    contiguous_runs,
    range_request,
)
from clip_assets.graph.plain_logger import PLAIN_LOGGERS, PLAIN_RUN_CONFIG
from clip_assets.registry import DatasetSpec
from clip_assets.source.discover import SourceProblem, discover_slices
from clip_assets.source.files import HubAccess
from clip_assets.source.slices import manifest_from_json, manifest_to_json
from resources.hub import HubResource
from resources.storage import StorageResource

#: The jobs the driver runs: a partition range's stages, then the whole-dataset stages.
_PARTITION_JOB = "partition_stages"
_WHOLE_JOB = "whole_dataset_stages"
#: Runs that have not finished: another run holding the same work is waited for.
_UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
#: How often a run waiting for another one looks again.
_WAIT_POLL_S = 2.0


@dataclass(frozen=True)
class PartitionPlan:
    """What to change in the instance: keys to add, delete, and (re)materialise; and the
    source files discovery skipped (corrupt, unreadable, a key another file holds), each
    with its reason."""

    add: list[str]
    delete: list[str]
    run: list[str]
    problems: list[SourceProblem] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.delete or self.run)


@dataclass(frozen=True)
class DatasetOutcome:
    """What :func:`run_dataset` materialised, and what did not succeed."""

    partitions: list[str]
    partition_runs: int
    failed_ranges: list[tuple[str, str]]
    #: Why the whole-dataset stages did not build, in words; None when they did.
    whole_dataset_error: str | None = None

    @property
    def success(self) -> bool:
        return not self.failed_ranges and self.whole_dataset_error is None


def plan_partitions(
    spec: DatasetSpec, storage: StorageResource, existing: list[str], hub: HubAccess
) -> PartitionPlan:
    """Looks at the source, saves the updated manifest, and says what the instance lacks.

    The manifest is saved before any partition is added, so a run never starts for a key the
    manifest does not know. Keys the manifest knows but the instance lacks (an earlier tick
    that stopped half way) are added and run again, so a failed tick is repaired by the next.
    """
    manifest_path = paths.manifest(spec.name)
    known = (
        manifest_from_json(storage.read_bytes(manifest_path))
        if storage.exists(manifest_path)
        else {}
    )
    found = discover_slices(spec, known, hub)
    if found.manifest_changed:  # also a renewed version record: the next look is cheaper
        storage.write_bytes(manifest_path, manifest_to_json(found.manifest))
    present = set(existing)
    add = sorted(key for key in found.manifest if key not in present)
    delete = sorted(key for key in found.removed if key in present)
    run = sorted(set(add) | set(found.changed))
    return PartitionPlan(add=add, delete=delete, run=run, problems=found.problems)


def partition_order(existing: list[str], plan: PartitionPlan) -> list[str]:
    """The instance's partition keys once ``plan`` is applied, in partition order (linear in
    the partitions: the deleted keys are a set, not a list searched once per key)."""
    deleted = set(plan.delete)
    return sorted({key for key in existing if key not in deleted} | set(plan.add))


def partition_ranges(
    order: list[str], wanted: list[str], per_run: int = PARTITIONS_PER_RUN
) -> list[tuple[str, str]]:
    """(first, last) ranges of ``wanted`` keys, neighbours in ``order``, ``per_run`` at most."""
    return contiguous_runs(order, wanted, per_run)


def apply_plan(instance: DagsterInstance, graph: DatasetGraph, plan: PartitionPlan) -> list[str]:
    """Adds and deletes the plan's partitions in ``instance``; returns the partition order."""
    name = graph.partitions.name
    for key in plan.delete:
        instance.delete_dynamic_partition(name, key)
    if plan.add:
        instance.add_dynamic_partitions(name, plan.add)
    return list(instance.get_dynamic_partitions(name))


@contextmanager
def resolved(resources: Mapping[str, Any]) -> Iterator[Any]:
    """The resources with their config (``EnvVar`` values included) resolved, for use outside
    a run; attributes by resource key (``resolved(r).hub``)."""
    with build_resources(dict(resources)) as built:
        yield built


def hub_access(resources: Any) -> HubAccess:
    """How to reach the Hub with resolved resources (no hub resource: the public Hub)."""
    hub = getattr(resources, "hub", None)
    return hub.access() if isinstance(hub, HubResource) else HubAccess()


def discover(
    spec: DatasetSpec, resources: Mapping[str, Any], instance: DagsterInstance
) -> PartitionPlan:
    """What ``clip-assets discover`` does: plan the source's partitions and apply the plan."""
    graph = DatasetGraph(spec)
    with resolved(resources) as ready:
        existing = list(instance.get_dynamic_partitions(graph.partitions.name))
        plan = plan_partitions(spec, ready.storage, existing, hub_access(ready))
    apply_plan(instance, graph, plan)
    return plan


def run_dataset(
    spec: DatasetSpec,
    resources: Mapping[str, Any],
    instance: DagsterInstance,
    *,
    partitions_per_run: int = PARTITIONS_PER_RUN,
    log: Callable[[str], None] = print,
) -> DatasetOutcome:
    """Adds the source's partitions, materialises those without embeddings, then the
    whole-dataset assets. Partitions that fail are reported; the index is built from the
    partitions that succeeded, as the asset would in the UI."""
    graph = DatasetGraph(spec)
    with resolved(resources) as ready:
        existing = list(instance.get_dynamic_partitions(graph.partitions.name))
        plan = plan_partitions(spec, ready.storage, existing, hub_access(ready))
        done = {paths.key_of(p) for p in ready.storage.list(paths.embeddings_dir(spec.name))}
    order = apply_plan(instance, graph, plan)
    todo = sorted(set(plan.run) | {key for key in order if key not in done})
    log(f"{spec.name}: {len(order)} partitions, {len(todo)} to materialise")
    for problem in plan.problems:
        log(f"  skipped {problem.file}: {problem}")
    # Imported here, not at the top: the factory builds the discovery sensor from this
    # module's plans, so the two modules need each other.
    from clip_assets.graph.factory import dataset_definitions

    definitions = dataset_definitions(graph, resources)
    jobs = {
        name: define_asset_job(name, selection=graph.keys(stages))
        for name, stages in (
            (_PARTITION_JOB, PARTITIONED_STAGES),
            (_WHOLE_JOB, WHOLE_DATASET_STAGES),
        )
    }
    runnable = Definitions.merge(
        definitions,
        Definitions(jobs=list(jobs.values()), resources=dict(resources), loggers=PLAIN_LOGGERS),
    )

    def run(job: str, tags: dict[str, str], partition_key: str | None = None) -> Any:
        wait_for_conflicting_runs(instance, tags or {PARTITION_TAG: str(partition_key)}, log)
        return runnable.resolve_job_def(job).execute_in_process(
            run_config=PLAIN_RUN_CONFIG,
            instance=instance,
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
        )

    failed: list[tuple[str, str]] = []
    ranges = partition_ranges(order, todo, partitions_per_run)
    for first, last in ranges:
        partition_key, tags = range_request(first, last)
        result = run(_PARTITION_JOB, tags, partition_key=partition_key)
        log(f"  partitions {first}..{last}: {'ok' if result.success else 'FAILED'}")
        if not result.success:
            failed.append((first, last))
    with resolved(resources) as ready:
        whole_error = _whole_dataset_blocker(ready.storage, spec, order)
    if whole_error is None:
        result = run(_WHOLE_JOB, {INDEX_BUILD_TAG: spec.name})
        if not result.success:
            whole_error = _first_failure(result)
    label = ", ".join(WHOLE_DATASET_STAGES)
    log(f"  {label}: {'ok' if whole_error is None else 'FAILED: ' + whole_error}")
    return DatasetOutcome(order, len(ranges), failed, whole_error)


def wait_for_conflicting_runs(
    instance: DagsterInstance, tags: Mapping[str, str], log: Callable[[str], None]
) -> None:
    """Waits while another unfinished run carries one of ``tags`` (the same partition, range
    or index build): in-process runs skip the run queue, so they honour its limits here."""
    while True:
        holders = [
            run.run_id
            for key, value in tags.items()
            for run in instance.get_runs(RunsFilter(statuses=_UNFINISHED, tags={key: value}))
        ]
        if not holders:
            return
        log(f"  waiting for run {holders[0]} ({', '.join(f'{k}={v}' for k, v in tags.items())})")
        time.sleep(_WAIT_POLL_S)


def _whole_dataset_blocker(
    storage: StorageResource, spec: DatasetSpec, order: list[str]
) -> str | None:
    """Why the whole-dataset stages cannot build yet, in words a person can act on."""
    if not order:
        return (
            f"the source {spec.source} holds no rows: check the folder, the file_glob and the "
            "url column of the registry entry"
        )
    stored = storage.list(paths.embeddings_dir(spec.name))
    if not stored:
        return (
            "no partition has embeddings: every partition failed (see the partition runs' "
            "errors above, e.g. the model did not load); fix the cause and run again, "
            "finished work is kept"
        )
    if not any(storage.read_parquet_metadata(path).num_rows for path in stored):
        return (
            "no image was downloaded: every URL failed (the images partitions' "
            "failure_reasons say why, e.g. hosts unreachable); fix the cause and run again "
            "with the images config retry_failed_only to fetch the transient failures"
        )
    return None


def _first_failure(result: Any) -> str:
    """The first failed step's error message, on one line."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            message = (error.message or "").strip().splitlines()
            return f"{event.step_key}: {message[0] if message else 'failed'}"
    return "the run failed"
