"""The README's DataComp section as a user runs it: HF_TOKEN exported, an hf:// source, the
CLI's ``discover`` and ``run``, a release published, all against the loopback Hub (which
refuses any request without the token)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi
from stand_ins.hub_server import HubServer

from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "clip-assets"
TOKEN = "hf_readme_flow_token_0123456789"
SOURCE_REPO = "mlfoundations-test/datacomp_tiny"
RELEASE_REPO = "me/datacomp-tiny-clip"


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with HubServer(tmp_path / "hub", token=TOKEN) as server:
        yield server


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=600, cwd=REPO
    )


def test_discover_and_run_with_hf_token_set(
    hub: HubServer, tmp_path: Path, tiny_model_name: str
) -> None:
    site = sample_site(good=6, broken=False)
    with ImageServer(site.routes) as server:
        upload = tmp_path / "upload"
        write_datacomp_shard(upload, site.rows(server))
        api = HfApi(endpoint=hub.url, token=TOKEN)
        api.create_repo(SOURCE_REPO, repo_type="dataset")
        api.upload_folder(folder_path=upload, repo_id=SOURCE_REPO, repo_type="dataset")
        registry = tmp_path / "datasets.yaml"
        registry.write_text(
            "datasets:\n  - name: tiny\n"
            f"    source: hf://datasets/{SOURCE_REPO}\n"
            "    rows_per_partition: 4\n    allowed_hosts: [127.0.0.1]\n"
        )
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        env = {
            **os.environ,
            "HF_TOKEN": TOKEN,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(tmp_path / "hf_home"),
            "CLIP_ASSETS_DATASETS": str(registry),
            "CLIP_ASSETS_ROOT": str(tmp_path / "data"),
            "CLIP_ASSETS_RELEASE_REPO": RELEASE_REPO,
            "CLIP_ASSETS_MODEL": tiny_model_name,
            "CLIP_ASSETS_PRETRAINED": "none",
            "DAGSTER_HOME": str(home),
        }
        discovered = _cli(env, "discover", "--dataset", "tiny")
        assert discovered.returncode == 0, discovered.stderr
        assert "tiny: +2 -0 partitions, 2 to run" in discovered.stdout
        ran = _cli(env, "run", "--dataset", "tiny")
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    published = hub.files(RELEASE_REPO)
    assert {"faiss", "index_infos.json", "README.md"} <= set(published)
    assert any(name.startswith("data/") for name in published)
    for output in (discovered, ran):
        assert TOKEN not in output.stdout + output.stderr
