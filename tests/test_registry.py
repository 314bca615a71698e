"""The dataset registry file: validated with a schema, one bad entry never hides the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from clip_assets.registry import (
    DatasetSpec,
    RegistryError,
    find_dataset,
    load_registry,
    read_registry,
)

GOOD = "  - name: good\n    source: /srv/good\n"


def registry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    return path


def test_registry_has_datacomp_and_reads_a_file(tmp_path: Path) -> None:
    path = registry(
        tmp_path,
        "datasets:\n  - name: mine\n    source: /srv/data\n    url_column: URL\n"
        "    allowed_hosts: [127.0.0.1]\n",
    )
    specs = {s.name: s for s in load_registry(path)}
    assert specs["datacomp_small"].hub_repo == "mlfoundations/datacomp_small"
    assert specs["mine"].allowed_hosts == ("127.0.0.1",)
    assert specs["mine"].url_column == "URL"
    with pytest.raises(KeyError, match="registered"):
        find_dataset("nope", path)


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("    source: /srv/x\n", "name", "required"),
        ("    name: bad\n", "source", "required"),
        ("    name: bad\n    source: /srv/x\n    url_column: 5\n", "url_column", "got 5"),
        ("    name: bad\n    source: /srv/x\n    revision: 1234567\n", "revision", "string"),
        (
            "    name: bad\n    source: /srv/x\n    rows_per_partition: many\n",
            "rows_per_partition",
            "integer",
        ),
        (
            "    name: bad\n    source: /srv/x\n    rows_per_partition: 0\n",
            "rows_per_partition",
            ">= 1",
        ),
        ("    name: bad\n    source: /srv/x\n    colour: red\n", "colour", "unknown setting"),
        ("    name: bad\n    source: [/srv/x]\n", "source", "string"),
        (
            "    name: bad\n    source: /srv/x\n    allowed_hosts: [a, [b]]\n",
            "allowed_hosts[1]",
            "string",
        ),
        (
            "    name: bad\n    source: /srv/x\n    allowed_hosts: 'a, b'\n",
            "allowed_hosts",
            "one host",
        ),
        ("    name: bad-name\n    source: /srv/x\n", "name", "letters, digits and '_'"),
    ],
)
def test_a_bad_entry_is_reported_by_file_dataset_and_key_and_the_others_load(
    tmp_path: Path, entry: str, key: str, message: str
) -> None:
    path = registry(tmp_path, "datasets:\n" + GOOD + "  - " + entry.lstrip())
    found = read_registry(path)
    assert "good" in {spec.name for spec in found.specs}
    assert "datacomp_small" in {spec.name for spec in found.specs}
    [problem] = found.problems
    assert (problem.file, problem.key) == (str(path), key)
    assert problem.dataset in ("bad", "bad-name", "entry 2")
    assert message in problem.message
    text = str(problem)
    assert str(path) in text and key in text and problem.dataset in text
    with pytest.raises(RegistryError, match=key.replace("[", r"\[")):
        load_registry(path)
    assert find_dataset("good", path).source == "/srv/good"


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = registry(tmp_path, "datasets:\n" + GOOD + "  - name: [unclosed\n")
    found = read_registry(path)
    assert [spec.name for spec in found.specs] == ["datacomp_small"]
    [problem] = found.problems
    assert problem.file == str(path) and "line 4" in problem.message
    with pytest.raises(RegistryError, match=r"datasets\.yaml"):
        find_dataset("good", path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: x\n", "mapping with a 'datasets' list"),
        ("datasets: {name: x}\n", "list"),
        ("datasets:\n  - just-a-name\n", "mapping of settings"),
    ],
)
def test_wrong_document_shapes_are_problems_not_tracebacks(
    tmp_path: Path, text: str, message: str
) -> None:
    found = read_registry(registry(tmp_path, text))
    assert [spec.name for spec in found.specs] == ["datacomp_small"]
    assert len(found.problems) == 1 and message in found.problems[0].message


def test_one_allowed_host_as_a_scalar_is_that_host_not_its_characters(tmp_path: Path) -> None:
    path = registry(
        tmp_path, "datasets:\n  - name: lan\n    source: /srv/x\n    allowed_hosts: 127.0.0.1\n"
    )
    [spec] = [s for s in load_registry(path) if s.name == "lan"]
    assert spec.allowed_hosts == ("127.0.0.1",)
    assert DatasetSpec(name="x", source="/s", allowed_hosts="::1").allowed_hosts == ("::1",)


def test_a_bad_entry_names_itself_when_asked_for(tmp_path: Path) -> None:
    path = registry(tmp_path, "datasets:\n" + GOOD + "  - name: bad\n    source: 3\n")
    with pytest.raises(RegistryError, match="dataset bad, source"):
        find_dataset("bad", path)


def test_the_code_location_loads_the_good_entries_and_reports_the_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import build_sensor_context

    from clip_assets.definitions import defs
    from clip_assets.graph.dataset_graph import DatasetGraph
    from clip_assets.graph.registry_sensor import REGISTRY_SENSOR_NAME
    from clip_assets.registry import DatasetSpec

    registry = tmp_path / "datasets.yaml"
    registry.write_text(
        f"datasets:\n  - name: good\n    source: {tmp_path}\n"
        "  - name: bad\n    source: 12\n    rows_per_partition: lots\n"
    )
    monkeypatch.setenv("CLIP_ASSETS_DATASETS", str(registry))
    location = defs()
    keys = {key.to_user_string() for key in location.resolve_all_asset_keys()}
    good = DatasetGraph(DatasetSpec(name="good", source=str(tmp_path)))
    assert good.key("faiss_index").to_user_string() in keys
    assert not any(key.startswith("bad/") for key in keys)
    with build_sensor_context() as context:
        skip = location.resolve_sensor_def(REGISTRY_SENSOR_NAME)(context)
    assert "dataset bad, source" in skip.skip_message
    assert "dataset bad, rows_per_partition" in skip.skip_message
