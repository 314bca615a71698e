"""When the whole-dataset assets rebuild: declarative automation, one sensor per dataset.

``faiss_index``, ``id_mapping`` and ``hf_release`` follow their inputs: once embeddings
partitions change and nothing upstream is still running, they rebuild. Unlike ``eager()`` the
condition does not wait for every partition to exist, since partitions keep arriving. Each
dataset's sensor tags its runs with ``INDEX_BUILD_TAG``, which the instance limits to one run
at a time per dataset (``dagster.yaml``), so two builds never write one index folder at once.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from clip_assets.graph.dataset_graph import WHOLE_DATASET_STAGES, DatasetGraph

REBUILD_ON_NEW_INPUTS = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())
#: Tag of every run that builds a dataset's whole-dataset assets; its value is the dataset.
INDEX_BUILD_TAG = "clip_assets/index_build"


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
        minimum_interval_seconds=60,
        description=f"Rebuilds {graph.name}'s index, id mapping and release when its "
        "embeddings change.",
    )
