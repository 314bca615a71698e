"""No form of a Hub token reaches the Dagster instance, the storage root, the logs or stdout.

A real instance on disk (``DAGSTER_HOME`` with sqlite run, event and compute-log storage)
runs the metadata stage against a Hub source and the release upload, through the loopback
Hub (which echoes the credentials it refuses, as a careless proxy might), with the token
given as the README says (``EnvVar("HF_TOKEN")``) and read as secret files hold it: with a
trailing newline. Then the uploads and downloads fail with a wrong token and with one that
has a newline inside (which the HTTP layer refuses, quoting it escaped).
"""

from __future__ import annotations

import base64
import logging
import shutil
from pathlib import Path
from urllib.parse import quote

import huggingface_hub.constants
import pytest
from dagster import DagsterInstance, EnvVar
from huggingface_hub import HfApi
from stand_ins.hub_server import HubServer

from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import discover
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import SampleSite
from clip_assets.registry import DatasetSpec
from resources.hub import HubResource

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_REPO = "canary/source"
RELEASE_REPO = "canary/release"
GOOD = "hf_GOODcanary0123456789abcdef"
WRONG = "hf_WRONGcanary0123456789abcdef\n"
INNER = "hf_INNERcanary0123\nTAILcanary0123"


def forms(token: str) -> set[str]:
    """Text a leak could show: each line of the token raw, URL-encoded and base64."""
    found = set()
    for part in token.split():
        found |= {part, quote(part, safe=""), base64.b64encode(part.encode()).decode()[:-4]}
    return found


def leaks(folders: list[Path], texts: list[str]) -> list[str]:
    where = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                where += [
                    f"{path}: {f}"
                    for t in (GOOD, WRONG, INNER)
                    for f in forms(t)
                    if f.encode() in data
                ]
    for n, text in enumerate(texts):
        where += [f"text {n}: {f}" for t in (GOOD, WRONG, INNER) for f in forms(t) if f in text]
    return where


def test_no_form_of_the_token_is_stored_or_logged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    site: SampleSite,
    image_server: ImageServer,
    tiny_model_name: str,
    make_resources,
    materialize_stages,
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    caplog.set_level(logging.DEBUG)

    with HubServer(tmp_path / "hub", token=GOOD, leaky_errors=True) as hub:
        rows = site.rows(image_server)
        write_datacomp_shard(tmp_path / "upload", rows)
        api = HfApi(endpoint=hub.url, token=GOOD)
        api.create_repo(SOURCE_REPO, repo_type="dataset")
        api.upload_folder(folder_path=tmp_path / "upload", repo_id=SOURCE_REPO, repo_type="dataset")

        spec = DatasetSpec(
            name="canary",
            source=f"hf://datasets/{SOURCE_REPO}",
            rows_per_partition=len(rows),
            allowed_hosts=("127.0.0.1",),
        )
        graph = DatasetGraph(spec)
        resources = make_resources(tmp_path / "data", tiny_model_name)
        resources["hub"] = HubResource(
            token=EnvVar("HF_TOKEN"), endpoint=hub.url, release_repo=RELEASE_REPO
        )
        instance = DagsterInstance.get()
        monkeypatch.setenv("HF_TOKEN", GOOD + "\n")
        [key] = discover(spec, resources, instance).add  # as `clip-assets discover` does

        def run(token: str, stages: tuple[str, ...], partition: str | None = None) -> bool:
            monkeypatch.setenv("HF_TOKEN", token)
            return materialize_stages(graph, instance, resources, stages, partition).success

        assert run(GOOD + "\n", ("metadata", "images", "embeddings"), key)
        assert run(GOOD + "\n", ("faiss_index", "id_mapping", "hf_release"))
        assert hub.commits(RELEASE_REPO)  # the upload with the newline-ended token worked
        for bad in (WRONG, INNER):
            shutil.rmtree(tmp_path / "hf-cache", ignore_errors=True)  # fetch the source again
            assert not run(bad, ("metadata",), key)
            assert not run(bad, ("hf_release",))

        errors = [
            event.dagster_event.event_specific_data.error.to_string()
            for run_record in instance.get_run_records()
            for event in instance.all_logs(run_record.dagster_run.run_id)
            if event.dagster_event is not None and event.dagster_event.is_step_failure
        ]
    assert len(errors) == 4, errors
    # The refused token was quoted (and scrubbed); the wrong one was refused by the Hub.
    assert any("***" in error for error in errors) and any("401" in error for error in errors)
    out, err = capfd.readouterr()
    found = leaks([home, tmp_path / "data"], [caplog.text, out, err, *errors])
    assert found == [], found
