"""Searching a dataset straight from the pipeline's storage: a local root and a GCS emulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clip_assets.cli import main
from clip_assets.search.stored import open_stored
from resources.storage import StorageResource, storage_for_root


@pytest.fixture(params=["local", "gcs"])
def root(
    request: pytest.FixtureRequest,
    storage_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A storage root holding the ``tiny`` dataset's index and id mapping (plus an images file
    that searching must not need)."""
    if request.param == "local":
        root = str(tmp_path / "root")
    else:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_emulator"))
        root = f"gs://clip-bucket/{tmp_path.name}"
    storage: StorageResource = storage_for_root(root)
    for path in sorted(storage_dir.rglob("*")):
        if path.is_file():
            storage.upload_file(path, f"tiny/{path.relative_to(storage_dir).as_posix()}")
    storage.write_bytes("tiny/images/00000.parquet", b"not needed to search")
    return root


def test_open_stored_searches_the_dataset(root: str, vectors: np.ndarray) -> None:
    with open_stored(storage_for_root(root), "tiny") as searcher:
        top = searcher.search(vectors[123], k=1)[0][0]
        assert (top.id, top.caption) == (123, "caption 123")
        assert searcher.infos["index_param"] == "nprobe=4"


def test_cli_searches_a_storage_root(
    root: str, vectors: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = tmp_path / "query.npy"
    np.save(query, vectors[55])
    argv = ["search", "--dataset", "tiny", "--root", root, "--embedding", str(query), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == 55


def test_missing_dataset_is_reported(root: str) -> None:
    with (
        pytest.raises(FileNotFoundError, match="no index yet"),
        open_stored(storage_for_root(root), "absent"),
    ):
        pass
