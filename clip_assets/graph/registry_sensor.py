"""The dataset registry as the UI shows it: which entries did not load, and why.

The code location loads every good registry entry and leaves out the bad ones
(``clip_assets.registry.read_registry``), so one mistyped entry cannot take the other datasets
down. This sensor is where the left-out ones are reported: each tick reads the registry again
and its skip reason names every problem (file, dataset, setting), or says that all loaded.
"""

from __future__ import annotations

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from clip_assets.registry import read_registry

REGISTRY_SENSOR_NAME = "dataset_registry"


def build_registry_sensor(loaded: list[str]) -> SensorDefinition:
    """A sensor reporting the registry's problems; ``loaded`` names the datasets the code
    location holds."""

    @sensor(
        name=REGISTRY_SENSOR_NAME,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports registry entries that did not load (see its skip reason).",
    )
    def dataset_registry(context: SensorEvaluationContext) -> SkipReason:
        registry = read_registry()
        if registry.problems:
            for problem in registry.problems:
                context.log.warning(str(problem))
            listed = "; ".join(str(problem) for problem in registry.problems)
            return SkipReason(f"{len(registry.problems)} registry problem(s): {listed}")
        return SkipReason(f"all {len(loaded)} datasets loaded: {', '.join(loaded)}")

    return dataset_registry
