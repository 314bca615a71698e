"""docs/architecture.md matches the code: the folders it names exist, the import rules hold."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
STAGE_PACKAGES = (
    "source",
    "download",
    "embed",
    "index",
    "release",
    "search",
    "serve",
    "retrieve",
    "offline",
)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_every_path_the_architecture_names_exists() -> None:
    # Folders end with "/", files with their extension (a run tag such as
    # `clip_assets/index_build` is neither).
    pattern = r"`((?:clip_assets|resources|tests|benchmarks)/[\w./]*(?:/|\.\w+))`"
    named = set(re.findall(pattern, DOC.read_text()))
    assert len(named) > 20
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_package_of_the_code_is_in_the_package_map() -> None:
    text = DOC.read_text()
    packages = [p for p in (REPO / "clip_assets").iterdir() if (p / "__init__.py").exists()]
    assert packages
    unmapped = sorted(p.name for p in packages if f"`clip_assets/{p.name}/`" not in text)
    assert not unmapped, f"packages missing from docs/architecture.md: {unmapped}"


def test_no_asset_module_imports_another() -> None:
    assets = sorted((REPO / "clip_assets" / "assets").glob("*.py"))
    names = {f"clip_assets.assets.{path.stem}" for path in assets}
    assert len(names) >= 7
    offenders = {
        path.name: sorted(imported & names - {f"clip_assets.assets.{path.stem}"})
        for path in assets
        if (imported := _imports(path)) & names - {f"clip_assets.assets.{path.stem}"}
    }
    assert not offenders, offenders


def test_stage_packages_import_no_dagster() -> None:
    offenders = {}
    for package in STAGE_PACKAGES:
        for path in sorted((REPO / "clip_assets" / package).rglob("*.py")):
            dagster = {m for m in _imports(path) if m == "dagster" or m.startswith("dagster.")}
            if dagster:
                offenders[str(path.relative_to(REPO))] = sorted(dagster)
    assert not offenders, offenders


def test_definitions_assemble_graphs_only_through_the_factory() -> None:
    imported = _imports(REPO / "clip_assets" / "definitions.py")
    assert "clip_assets.graph.factory" in imported
    assert not {m for m in imported if m.startswith("clip_assets.assets")}


def test_deploy_sizes_pods_without_importing_an_asset() -> None:
    offenders = {}
    for path in sorted((REPO / "clip_assets" / "deploy").glob("*.py")):
        assets = sorted(m for m in _imports(path) if m.startswith("clip_assets.assets"))
        if assets:
            offenders[path.name] = assets
    assert not offenders, offenders
