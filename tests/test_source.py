"""Source listing, slicing into partition keys, and reading a slice as normalised metadata."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clip_assets.offline.datacomp import SampleRow, datacomp_uid, write_datacomp_shard
from clip_assets.registry import DatasetSpec
from clip_assets.schemas import METADATA_SCHEMA
from clip_assets.source.discover import discover_slices
from clip_assets.source.files import fetch_source_file, list_source_files
from clip_assets.source.reader import read_slice
from clip_assets.source.slices import (
    manifest_from_json,
    manifest_to_json,
)
from resources.storage import storage_for_root


def _rows(n: int, offset: int = 0) -> list[SampleRow]:
    return [
        SampleRow(url=f"http://127.0.0.1:1/{i}.jpg", text=f"caption {i}", sha256="AB" * 32)
        for i in range(offset, offset + n)
    ]


def test_discovery_slices_new_files_and_nothing_when_unchanged(tmp_path: Path) -> None:
    write_datacomp_shard(tmp_path, _rows(25))
    spec = DatasetSpec(name="local", source=str(tmp_path), rows_per_partition=10)
    first = discover_slices(spec, {})
    assert len(first.added) == 3 and not first.changed
    assert [first.manifest[k].rows for k in first.added] == [10, 10, 5]
    again = discover_slices(spec, manifest_from_json(manifest_to_json(first.manifest)))
    assert again.added == again.changed == again.removed == []

    write_datacomp_shard(tmp_path, _rows(4, offset=100))
    third = discover_slices(spec, first.manifest)
    assert len(third.added) == 1 and not third.changed
    assert len(third.manifest) == 4


def test_read_slice_normalises_and_records_lineage(tmp_path: Path) -> None:
    path = write_datacomp_shard(tmp_path, _rows(25), row_group_size=4)
    spec = DatasetSpec(name="local", source=str(tmp_path), rows_per_partition=10)
    found = discover_slices(spec, {})
    piece = found.manifest[found.added[1]]
    table = read_slice(spec, piece, path)
    assert table.schema == METADATA_SCHEMA
    assert table.column("source_row").to_pylist() == list(range(10, 20))
    assert table.column("text").to_pylist() == [f"caption {i}" for i in range(10, 20)]
    assert table.column("sha256").to_pylist()[0] == "ab" * 32
    assert table.column("uid").to_pylist()[0] == datacomp_uid(
        "caption 10", "http://127.0.0.1:1/10.jpg"
    )
    assert set(table.column("source_file").to_pylist()) == {path.name}


def test_custom_columns_and_derived_uid(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"URL": ["http://a/x.jpg", None], "TEXT": ["x", "y"]}),
        tmp_path / "laion.parquet",
    )
    spec = DatasetSpec(
        name="laion",
        source=str(tmp_path),
        url_column="URL",
        caption_column="TEXT",
        uid_column=None,
        sha256_column=None,
    )
    [file] = list_source_files(spec)
    piece = discover_slices(spec, {}).manifest["laion-0000"]
    table = read_slice(spec, piece, tmp_path / file.path)
    assert table.column("uid").to_pylist() == [
        datacomp_uid("x", "http://a/x.jpg"),
        datacomp_uid("y", None),
    ]
    assert table.column("sha256").null_count == 2


def test_missing_url_column_is_a_clear_error(tmp_path: Path) -> None:
    write_datacomp_shard(tmp_path, _rows(3))
    spec = DatasetSpec(name="x", source=str(tmp_path))
    piece = next(iter(discover_slices(spec, {}).manifest.values()))
    other = DatasetSpec(name="x", source=str(tmp_path), url_column="URL")
    with pytest.raises(KeyError, match="no url column 'URL'"):
        read_slice(other, piece, tmp_path / piece.file)


def test_gcs_source_lists_counts_and_fetches(
    tmp_path: Path, gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    local = write_datacomp_shard(tmp_path / "upload", _rows(25), row_group_size=4)
    prefix = f"sources/{tmp_path.name}"
    storage_for_root(f"gs://clip-bucket/{prefix}").upload_file(local, f"shards/{local.name}")
    spec = DatasetSpec(name="gcs", source=f"gs://clip-bucket/{prefix}", rows_per_partition=10)
    [file] = list_source_files(spec)
    assert file.path == f"shards/{local.name}"
    found = discover_slices(spec, {})
    assert sorted(found.manifest[k].rows for k in found.added) == [5, 10, 10]
    fetched = fetch_source_file(spec, file, tmp_path / "cache")
    assert fetched.read_bytes() == local.read_bytes()
    assert fetch_source_file(spec, file, tmp_path / "cache") == fetched  # cached
