"""When the whole-dataset assets rebuild: declarative automation, evaluated by one sensor.

``faiss_index``, ``id_mapping`` and ``hf_release`` follow their inputs: once embeddings
partitions change and nothing upstream is still running, they rebuild. Unlike ``eager()`` the
condition does not wait for every partition to exist, since partitions keep arriving.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
)

from clip_assets.graph.dataset_graph import WHOLE_DATASET_STAGES, DatasetGraph

REBUILD_ON_NEW_INPUTS = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())
REBUILD_SENSOR_NAME = "rebuild_whole_dataset_assets"


def build_rebuild_sensor(graphs: Sequence[DatasetGraph]) -> AutomationConditionSensorDefinition:
    """Evaluates the whole-dataset assets' automation conditions (index, mapping, release),
    running by default so a new embeddings partition leads to a rebuilt index."""
    keys = [key for graph in graphs for key in graph.keys(WHOLE_DATASET_STAGES)]
    return AutomationConditionSensorDefinition(
        REBUILD_SENSOR_NAME,
        target=AssetSelection.assets(*keys),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
    )
