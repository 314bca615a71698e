"""Where this checkout's deployment files are, and the release they are rendered for."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SETUP = REPO / "scripts" / "setup.sh"
DOCS = REPO / "docs" / "deploy.md"
RELEASE = "dagster"
NAMESPACE = "dagster"


def project() -> dict:
    """pyproject.toml's [project] table (Python 3.11+ reads TOML; 3.10 skips the test)."""
    import pytest

    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
