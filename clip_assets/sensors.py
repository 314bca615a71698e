"""Sensors: new shards become partitions with runs; whole-dataset assets follow by automation."""

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from clip_assets.assets.dataset import PARTITIONS_PER_RUN, DatasetGraph
from clip_assets.assets.discovery import contiguous_runs, plan_partitions
from resources.hub import HubResource
from resources.storage import StorageResource

# Dagster's tags for a run over a partition range (what its own multi-run backfills set).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def build_discovery_sensor(graph: DatasetGraph) -> SensorDefinition:
    """Lists the dataset's source; adds partitions for new files or slices and requests runs
    of metadata -> images -> embeddings for them, several partitions per run."""
    spec = graph.spec
    remote = spec.hub_repo is not None or spec.source.startswith("gs://")
    stages = [graph.key("metadata"), graph.key("images"), graph.key("embeddings")]

    @sensor(
        name=f"{spec.name}_discover_shards",
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
        if not (plan.add or plan.delete or plan.run):
            return SkipReason(f"{spec.source}: nothing new")
        order = [key for key in existing if key not in plan.delete] + plan.add
        run_requests = [
            RunRequest(
                asset_selection=stages,
                partition_key=first if first == last else None,
                tags={} if first == last else {RANGE_START_TAG: first, RANGE_END_TAG: last},
            )
            for first, last in contiguous_runs(order, plan.run, PARTITIONS_PER_RUN)
        ]
        dynamic_requests = []
        if plan.add:
            dynamic_requests.append(partitions.build_add_request(plan.add))
        if plan.delete:
            dynamic_requests.append(partitions.build_delete_request(plan.delete))
        context.log.info(
            f"{spec.name}: +{len(plan.add)} -{len(plan.delete)} partitions, "
            f"{len(plan.run)} to run in {len(run_requests)} runs"
        )
        return SensorResult(run_requests=run_requests, dynamic_partitions_requests=dynamic_requests)

    return discover_shards


def build_rebuild_sensor(graphs: list[DatasetGraph]) -> AutomationConditionSensorDefinition:
    """Evaluates the whole-dataset assets' automation conditions (index, mapping, release),
    running by default so a new embeddings partition leads to a rebuilt index."""
    keys = [g.key(stage) for g in graphs for stage in ("faiss_index", "id_mapping", "hf_release")]
    return AutomationConditionSensorDefinition(
        "rebuild_whole_dataset_assets",
        target=AssetSelection.assets(*keys),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
