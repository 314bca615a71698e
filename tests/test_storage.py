"""The storage resource on a local folder and on a GCS emulator: same behaviour, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from resources.storage import GCSStorage, LocalStorage, StorageResource, storage_for_root


@pytest.fixture(params=["local", "gcs"])
def storage(request, tmp_path: Path, monkeypatch) -> StorageResource:
    if request.param == "local":
        return LocalStorage(root=str(tmp_path / "root"))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_emulator"))
    return storage_for_root(f"gs://clip-bucket/runs/{tmp_path.name}")


def test_round_trip_list_and_delete(storage: StorageResource) -> None:
    table = pa.table({"uid": ["a", "b"], "x": [1, 2]})
    storage.write_table("ds/images/b-0001.parquet", table)
    storage.write_table("ds/images/a-0000.parquet", table)
    storage.write_bytes("ds/index/index_infos.json", b"{}")

    assert storage.read_table("ds/images/a-0000.parquet").equals(table)
    assert storage.read_table("ds/images/a-0000.parquet", columns=["uid"]).column_names == ["uid"]
    assert storage.list("ds/images") == ["ds/images/a-0000.parquet", "ds/images/b-0001.parquet"]
    assert storage.exists("ds/index/index_infos.json")
    with storage.local_dir("ds/images") as folder:
        assert sorted(p.name for p in folder.iterdir()) == ["a-0000.parquet", "b-0001.parquet"]
    storage.delete("ds/images/a-0000.parquet")
    assert not storage.exists("ds/images/a-0000.parquet")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("ds/images/a-0000.parquet")


def test_paths_cannot_escape_the_root(storage: StorageResource) -> None:
    for bad in ("../outside", "/etc/passwd", "ds/../../x"):
        with pytest.raises(ValueError, match="relative"):
            storage.write_bytes(bad, b"x")


def test_gcs_root_is_parsed() -> None:
    storage = storage_for_root("gs://bucket/some/prefix")
    assert isinstance(storage, GCSStorage)
    assert storage.uri("ds/x.parquet") == "gs://bucket/some/prefix/ds/x.parquet"


def test_failed_local_write_leaves_no_file(tmp_path: Path) -> None:
    storage = LocalStorage(root=str(tmp_path))

    storage.write_bytes("ds/a.bin", b"old")
    with pytest.raises(TypeError):
        storage.write_bytes("ds/a.bin", object())  # type: ignore[arg-type]
    assert storage.read_bytes("ds/a.bin") == b"old"
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["a.bin"]


def test_replace_folder_swaps_the_whole_folder(storage: StorageResource, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for name in ("faiss", "shards.json", "index_infos.json"):
        (old / name).write_text(f"old {name}")
    storage.replace_folder(old, "ds/index")
    new = tmp_path / "new"
    new.mkdir()
    for name in ("faiss", "index_infos.json", "model.json"):
        (new / name).write_text(f"new {name}")
    storage.replace_folder(new, "ds/index", last=("index_infos.json",))
    assert storage.list("ds/index") == [
        "ds/index/faiss",
        "ds/index/index_infos.json",
        "ds/index/model.json",
    ]
    assert {storage.read_bytes(p).decode() for p in storage.list("ds/index")} == {
        "new faiss",
        "new index_infos.json",
        "new model.json",
    }


def test_local_replace_folder_leaves_nothing_beside_it(tmp_path: Path) -> None:
    storage = LocalStorage(root=str(tmp_path / "root"))
    for version in ("one", "two"):
        with storage.scratch("index") as work:
            (work / "faiss").write_text(version)
            storage.replace_folder(work, "ds/index")
    assert sorted(p.name for p in (tmp_path / "root" / "ds").iterdir()) == ["index"]
    assert storage.read_bytes("ds/index/faiss") == b"two"
    assert list(storage.scratch_area().iterdir()) == []


def test_local_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int) -> None:
    storage = LocalStorage(root=str(tmp_path / "root"))
    source = tmp_path / "source.bin"
    source.write_bytes(b"index bytes")
    storage.write_bytes("ds/index/index_infos.json", b"{}")
    storage.upload_file(source, "ds/index/faiss")
    storage.write_table("ds/images/a-0000.parquet", pa.table({"uid": ["a"]}))
    stored = [p for p in (tmp_path / "root").rglob("*") if p.is_file()]
    assert len(stored) == 3
    assert {p.stat().st_mode & 0o777 for p in stored} == {0o666 & ~umask}
    folders = [p for p in (tmp_path / "root").rglob("*") if p.is_dir()]
    assert {p.stat().st_mode & 0o777 for p in folders} == {0o777 & ~umask}


def test_a_replaced_folder_gets_the_modes_the_umask_gives(tmp_path: Path, umask: int) -> None:
    storage = LocalStorage(root=str(tmp_path / "root"))
    for version in ("one", "two"):
        with storage.scratch("index") as work:
            (work / "faiss").write_text(version)
            storage.replace_folder(work, "ds/index")
    index = tmp_path / "root" / "ds" / "index"
    assert index.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (index / "faiss").stat().st_mode & 0o777 == 0o666 & ~umask
