"""The discovery sensor: new source slices become partitions, with runs requested for them."""

from __future__ import annotations

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, DatasetGraph
from clip_assets.graph.driver import partition_order, partition_ranges, plan_partitions
from clip_assets.graph.partitions import partition_budget_warning, range_request
from resources.hub import HubResource
from resources.storage import StorageResource


def discovery_sensor_name(graph: DatasetGraph) -> str:
    return f"{graph.name}_discover_shards"


def build_discovery_sensor(graph: DatasetGraph) -> SensorDefinition:
    """Lists the dataset's source; adds partitions for new files or slices and requests runs
    of metadata -> images -> embeddings for them, several partitions per run (unless the
    dataset's ``run_on_discovery`` is off: then a person launches them)."""
    spec = graph.spec
    remote = spec.hub_repo is not None or spec.source.startswith("gs://")
    stages = graph.keys(PARTITIONED_STAGES)

    @sensor(
        name=discovery_sensor_name(graph),
        asset_selection=stages,
        minimum_interval_seconds=600 if remote else 30,
        # A remote source starts stopped: turning it on launches a large backfill, which a
        # person should choose to do; a local folder (the demo, tests, a mirror) just follows.
        default_status=DefaultSensorStatus.STOPPED if remote else DefaultSensorStatus.RUNNING,
        description=f"Adds a partition per new slice of {spec.source} and runs it.",
    )
    def discover_shards(
        context: SensorEvaluationContext, storage: StorageResource, hub: HubResource
    ) -> SensorResult | SkipReason:
        partitions = graph.partitions
        existing = list(context.instance.get_dynamic_partitions(partitions.name))
        plan = plan_partitions(spec, storage, existing, hub.access())
        skipped = "".join(f"; skipped {problem}" for problem in plan.problems)
        if plan.empty:
            return SkipReason(f"{spec.source}: nothing new{skipped}")
        for problem in plan.problems:
            context.log.warning(f"{spec.name}: skipped {problem}")
        too_many = partition_budget_warning(len(existing) + len(plan.add), spec.rows_per_partition)
        if too_many:
            context.log.warning(f"{spec.name}: {too_many}")
        run_requests = []
        wanted = plan.run if spec.run_on_discovery else []
        for first, last in partition_ranges(partition_order(existing, plan), wanted):
            partition_key, tags = range_request(first, last)
            run_requests.append(
                RunRequest(asset_selection=stages, partition_key=partition_key, tags=tags)
            )
        dynamic_requests = []
        if plan.add:
            dynamic_requests.append(partitions.build_add_request(plan.add))
        if plan.delete:
            dynamic_requests.append(partitions.build_delete_request(plan.delete))
        launch = f"in {len(run_requests)} runs" if spec.run_on_discovery else "left to a person"
        context.log.info(
            f"{spec.name}: +{len(plan.add)} -{len(plan.delete)} partitions, "
            f"{len(plan.run)} to run {launch}"
        )
        return SensorResult(run_requests=run_requests, dynamic_partitions_requests=dynamic_requests)

    return discover_shards
