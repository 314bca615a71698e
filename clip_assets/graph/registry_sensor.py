"""The dataset registry as the UI shows it, and new datasets with no person in the loop.

The code location reads the registry when it loads (``clip_assets.definitions``), builds one
graph per good entry and leaves out the bad ones (``clip_assets.registry.read_registry``), so
one mistyped entry cannot take the other datasets down. This sensor does two things each tick:

- it reports the left-out entries: its skip reason names every problem (file, dataset,
  setting), or says that all loaded;
- it carries the fingerprint of the registry file the location loaded; when the file's
  fingerprint differs, it asks the webserver to reload the code location through Dagster's
  GraphQL client (``DagsterGraphQLClient.reload_repository_location``), as the UI's "Reload"
  button does. The reloaded location holds the new dataset's graph, whose discovery sensor
  adds and runs its partitions, and whose rebuild automation builds its index. The new
  location's sensor carries the new fingerprint, so one change gives one reload.

Why a reload and not a dataset partition dimension: each dataset is its own graph, with asset
keys prefixed by its name (a contract), its own whole-dataset index, release and run-tag
limits, and its own partitions; a dataset dimension would make every asset a two-dimensional
partitioned asset, the index a per-dataset partition of one asset, and change every key.

``CLIP_ASSETS_WEBSERVER`` is the webserver's URL (default ``http://127.0.0.1:3000``, ``dagster
dev``'s); ``CLIP_ASSETS_LOCATION`` the location's name (default ``clip_assets.definitions:defs``,
what ``workspace.yaml`` gives it). A location served by ``dagster api grpc`` cannot re-read its
code; serve it with ``dagster code-server start`` (what ``dagster dev`` does) so a reload does.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from clip_assets.registry import read_registry, registry_fingerprint, registry_path

REGISTRY_SENSOR_NAME = "dataset_registry"
WEBSERVER_ENV = "CLIP_ASSETS_WEBSERVER"
LOCATION_ENV = "CLIP_ASSETS_LOCATION"
DEFAULT_WEBSERVER = "http://127.0.0.1:3000"
DEFAULT_LOCATION = "clip_assets.definitions:defs"


def reload_location(webserver: str, location: str) -> str:
    """Asks the webserver at ``webserver`` to reload ``location``; returns its answer's status."""
    from dagster_graphql import DagsterGraphQLClient

    url = urlparse(webserver)
    client = DagsterGraphQLClient(
        url.hostname or "127.0.0.1",
        port_number=url.port,
        use_https=url.scheme == "https",
        path_prefix=url.path.rstrip("/"),
        timeout=120,
    )
    info = client.reload_repository_location(location)
    if info.failure_type:
        return f"{info.status.value}: {info.failure_type}: {info.message}"
    return info.status.value


def build_registry_sensor(loaded: list[str], loaded_fingerprint: str) -> SensorDefinition:
    """The location-wide registry sensor; ``loaded`` names the datasets the code location
    holds, ``loaded_fingerprint`` is the registry file's fingerprint when it loaded."""

    @sensor(
        name=REGISTRY_SENSOR_NAME,
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports registry entries that did not load (see its skip reason), and "
        "reloads the code location when the registry changes, so a new dataset's graph, "
        "partitions and index follow without a person.",
    )
    def dataset_registry(context: SensorEvaluationContext) -> SkipReason:
        if registry_fingerprint() != loaded_fingerprint:
            webserver = os.environ.get(WEBSERVER_ENV, DEFAULT_WEBSERVER)
            location = os.environ.get(LOCATION_ENV, DEFAULT_LOCATION)
            context.log.info(f"{registry_path()} changed: asking {webserver} to reload {location}")
            status = reload_location(webserver, location)
            return SkipReason(f"the registry changed; reload of {location}: {status}")
        registry = read_registry()
        if registry.problems:
            for problem in registry.problems:
                context.log.warning(str(problem))
            listed = "; ".join(str(problem) for problem in registry.problems)
            return SkipReason(f"{len(registry.problems)} registry problem(s): {listed}")
        return SkipReason(f"all {len(loaded)} datasets loaded: {', '.join(loaded)}")

    return dataset_registry
