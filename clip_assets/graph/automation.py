"""When the whole-dataset assets rebuild: declarative automation, one sensor per dataset.

A wave of partition updates (a backfill, the discovery sensor's runs) rebuilds ``faiss_index``,
``id_mapping`` and ``hf_release`` once, in dependency order, after the wave:

- ``faiss_index`` follows the embeddings: once a partition's embeddings change, it waits until
  no embeddings partition is planned by a run or a backfill that has not finished, then
  rebuilds. A run plans its partitions when it is created (queued runs count), and a backfill
  counts until each of its partitions is done, so the gate holds for the whole wave. Unlike
  ``eager()`` it does not wait for every partition to exist: partitions keep arriving, and
  one that failed for good must not hold the index back (the asset decides how many may be
  missing). A run that failed and waits for its automatic retry holds the gate too
  (``retry_gate``): Dagster counts its partitions in progress neither before the retry is
  launched nor in the backfill.
- ``id_mapping`` and ``hf_release`` follow only the whole-dataset assets above them. They are
  requested on the same tick as the index (``will_be_requested``), so all three share one run.
  ``id_mapping`` also reads the metadata, but a new metadata partition is not a reason to
  rebuild it: only a new index is (before, the end of a wave's metadata step started
  ``id_mapping`` and ``hf_release`` against the old index while embeddings still ran, and a
  release from the old index was published).

Each dataset's sensor tags its runs with ``INDEX_BUILD_TAG``, which the instance limits to one
run at a time per dataset (``dagster.yaml``), so two builds never write one index folder at once.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, WHOLE_DATASET_STAGES, DatasetGraph
from clip_assets.graph.retry_gate import AwaitingRetry

#: Tag of every run that builds a dataset's whole-dataset assets; its value is the dataset.
INDEX_BUILD_TAG = "clip_assets/index_build"
#: How often the daemon evaluates a dataset's rebuild conditions.
EVALUATION_INTERVAL_S = 30


def rebuild_condition(graph: DatasetGraph, stage: str) -> AutomationCondition:
    """``stage``'s condition: rebuild once its inputs changed and none of them is in progress.

    The first whole-dataset stage follows every dependency (the embeddings); the later ones
    follow only the whole-dataset stages, so a wave upstream reaches them through the index.
    """
    updated = AutomationCondition.any_deps_updated()
    if stage != WHOLE_DATASET_STAGES[0]:
        updated = updated.allow(AssetSelection.assets(*graph.keys(WHOLE_DATASET_STAGES)))
    return (
        updated.since_last_handled()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & ~AwaitingRetry(frozenset(graph.keys(PARTITIONED_STAGES)))
    ).with_label("rebuild_after_inputs_settle")


def rebuild_sensor_name(graph: DatasetGraph) -> str:
    return f"{graph.name}_rebuild_index"


def build_rebuild_sensor(graph: DatasetGraph) -> AutomationConditionSensorDefinition:
    """Evaluates the dataset's whole-dataset assets' automation conditions (index, mapping,
    release), running by default so a new embeddings partition leads to a rebuilt index."""
    return AutomationConditionSensorDefinition(
        rebuild_sensor_name(graph),
        target=AssetSelection.assets(*graph.keys(WHOLE_DATASET_STAGES)),
        run_tags={INDEX_BUILD_TAG: graph.name},
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=EVALUATION_INTERVAL_S,
        use_user_code_server=True,  # AwaitingRetry is Python the daemon cannot deserialize
        description=f"Rebuilds {graph.name}'s index, id mapping and release once a wave of "
        "embeddings updates has settled.",
    )
