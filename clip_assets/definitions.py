"""The Dagster code location: one graph per registered dataset, merged with the shared
resources.

The registry is read when Dagster loads the location (``defs`` is lazy), not when this module
is imported, so nothing depends on import order; a reload of the code location picks up a
registry that changed, and the registry sensor asks for that reload when the file changes
(``clip_assets.graph.registry_sensor``). Each dataset's graph comes from
``clip_assets.graph.factory``; the resources from the environment
(``clip_assets.graph.environment``), and so does the executor: in-process, a process per
step, or a Kubernetes pod per step (``CLIP_ASSETS_EXECUTOR``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from dagster import Definitions, definitions

from clip_assets.deploy.executor_choice import executor_from_env
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.environment import default_resources
from clip_assets.graph.factory import dataset_definitions
from clip_assets.graph.registry_sensor import build_registry_sensor
from clip_assets.registry import DatasetSpec, read_registry, registry_fingerprint

LOG = logging.getLogger(__name__)


def location_definitions(
    specs: Sequence[DatasetSpec], resources: Mapping[str, object]
) -> Definitions:
    """Every dataset's graph, with ``resources``; runs execute with the executor the
    environment names (``clip_assets.deploy.executor_choice``)."""
    return Definitions.merge(
        *(dataset_definitions(DatasetGraph(spec), resources) for spec in specs),
        Definitions(resources=dict(resources), executor=executor_from_env()),
    )


@definitions
def defs() -> Definitions:
    """The code location as ``workspace.yaml`` loads it: the registry's good entries (the bad
    ones are logged here and reported by the registry sensor), the environment, and the
    registry sensor, which also reloads the location when the registry changes."""
    fingerprint = registry_fingerprint()  # before reading: a change in between reloads again
    registry = read_registry()
    for problem in registry.problems:
        LOG.warning("dataset registry: %s (left out)", problem)
    loaded = location_definitions(registry.specs, default_resources())
    sensor = build_registry_sensor([spec.name for spec in registry.specs], fingerprint)
    return Definitions.merge(loaded, Definitions(sensors=[sensor]))
