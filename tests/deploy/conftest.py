"""The deployment files of this checkout and the definitions they deploy."""

from __future__ import annotations

import pytest
from deploy_files import NAMESPACE, RELEASE, VALUES

from clip_assets.definitions import location_definitions
from clip_assets.deploy.helm_values import ChartDeployment, chart_deployment, load_values
from clip_assets.graph.environment import default_resources
from clip_assets.registry import DATACOMP_SMALL


@pytest.fixture(scope="session")
def values() -> dict:
    return load_values(VALUES)


@pytest.fixture(scope="session")
def chart(values: dict) -> ChartDeployment:
    return chart_deployment(values, RELEASE, NAMESPACE)


@pytest.fixture(scope="session")
def defs():
    """DataComp small's graph, as the code location serves it (nothing is materialised)."""
    return location_definitions([DATACOMP_SMALL], default_resources())
