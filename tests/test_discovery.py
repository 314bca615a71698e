"""Discovery on real files: versions by content, collision-free keys, bad files skipped."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.registry import DatasetSpec
from clip_assets.source.discover import discover_slices
from clip_assets.source.slices import (
    manifest_from_json,
    manifest_to_json,
    partition_key,
)
from resources.storage import storage_for_root


def _rows(n: int, offset: int = 0) -> list[SampleRow]:
    return [
        SampleRow(url=f"http://127.0.0.1:1/{i}.jpg", text=f"caption {i}")
        for i in range(offset, offset + n)
    ]


def _urls(path: Path, names: list[str], rows: int = 3) -> None:
    """Parquet files at ``names`` below ``path``, each with its own urls."""
    for n, name in enumerate(names):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        urls = [f"http://127.0.0.1:1/{n}/{i}.jpg" for i in range(rows)]
        pq.write_table(pa.table({"url": urls, "text": ["t"] * rows}), path / name)


def _spec(source: Path | str, rows: int = 10) -> DatasetSpec:
    return DatasetSpec(name="local", source=str(source), rows_per_partition=rows)


def _again(spec: DatasetSpec, manifest: dict) -> object:
    """Discovery against the manifest as stored (through its JSON)."""
    return discover_slices(spec, manifest_from_json(manifest_to_json(manifest)))


def test_touch_and_copy_of_a_source_file_leave_nothing_to_run(tmp_path: Path) -> None:
    source = tmp_path / "source"
    path = write_datacomp_shard(source, _rows(25))
    spec = _spec(source)
    first = discover_slices(spec, {})
    assert len(first.to_run) == 3

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns + 5_000_000_000, stat.st_mtime_ns + 5_000_000_000))
    touched = _again(spec, first.manifest)
    assert touched.to_run == [] and touched.removed == []
    assert touched.manifest.keys() == first.manifest.keys()
    assert touched.manifest_changed  # the new mtime is recorded, so the next look is free

    copy = tmp_path / "copy"
    shutil.copyfile(path, copy)
    copy.replace(path)  # the same bytes as a new file (new inode and mtime)
    copied = _again(spec, touched.manifest)
    assert copied.to_run == [] and not copied.problems

    unchanged = _again(spec, copied.manifest)
    assert unchanged.to_run == [] and not unchanged.manifest_changed


def test_a_change_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    urls = [f"http://127.0.0.1:1/{i}.jpg" for i in range(25)]
    path = tmp_path / "plain.parquet"
    # Uncompressed, no dictionary, no statistics: a value can be edited in place, byte for byte.
    pq.write_table(
        pa.table({"url": urls, "text": ["t"] * 25}),
        path,
        compression="none",
        use_dictionary=False,
        write_statistics=False,
    )
    spec = _spec(tmp_path)
    first = discover_slices(spec, {})
    stat = path.stat()
    data = path.read_bytes()
    assert data.count(b"/4.jpg") == 1
    path.write_bytes(data.replace(b"/4.jpg", b"/X.jpg"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert pq.read_table(path)["url"][4].as_py() == "http://127.0.0.1:1/X.jpg"
    found = _again(spec, first.manifest)
    assert found.changed == first.added  # every slice of the changed file is redone


def test_a_manifest_from_before_content_versions_is_adopted_without_reruns(tmp_path: Path) -> None:
    source = tmp_path / "source"
    path = write_datacomp_shard(source, _rows(25))
    spec = _spec(source)
    current = discover_slices(spec, {})
    stat = path.stat()
    legacy = {  # what discovery wrote when the version was size + mtime
        key: dataclasses.replace(
            piece, version=f"{stat.st_size}-{stat.st_mtime_ns}", fingerprint=None
        )
        for key, piece in current.manifest.items()
    }
    adopted = _again(spec, legacy)
    assert adopted.to_run == [] and adopted.manifest_changed
    assert adopted.manifest == current.manifest


def test_gcs_source_reuploaded_with_the_same_bytes_leaves_nothing_to_run(
    tmp_path: Path, gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    local = write_datacomp_shard(tmp_path / "upload", _rows(25))
    prefix = f"sources/{tmp_path.name}"
    bucket = storage_for_root(f"gs://clip-bucket/{prefix}")
    bucket.upload_file(local, local.name)
    spec = _spec(f"gs://clip-bucket/{prefix}")
    first = discover_slices(spec, {})
    assert len(first.to_run) == 3
    bucket.upload_file(local, local.name)  # a new generation of the same bytes
    assert _again(spec, first.manifest).to_run == []
    write_datacomp_shard(tmp_path / "other", _rows(25, offset=7)).replace(tmp_path / "o")
    bucket.upload_file(tmp_path / "o", local.name)
    assert _again(spec, first.manifest).changed == first.added


def test_names_that_map_alike_get_distinct_keys(tmp_path: Path) -> None:
    names = [
        "a b.parquet",
        "a_b.parquet",
        "a(b.parquet",
        "x/y.parquet",
        "x.y.parquet",
        "A_B.parquet",
    ]
    _urls(tmp_path, names)
    found = discover_slices(_spec(tmp_path), {})
    owners = {piece.file for piece in found.manifest.values()}
    assert owners == set(names) - {"a_b.parquet"} and not found.changed
    # Keys that differ only in case would share a file on a case-insensitive disk: the first
    # file in source order keeps the key, the other is reported.
    [problem] = found.problems
    assert problem.file == "a_b.parquet" and "A_B.parquet" in problem.message
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", key) for key in found.manifest)
    for _ in range(2):  # and the manifest no longer flips between files on each look
        again = _again(_spec(tmp_path), found.manifest)
        assert again.to_run == [] and not again.manifest_changed


def test_datacomp_keys_are_unchanged_and_ordered() -> None:
    hex_stem = "0123456789abcdef0123456789abcdef"
    assert partition_key(f"{hex_stem}.parquet", 3) == "0123456789ab-0003"
    assert partition_key(f"part_1/{hex_stem}.parquet", 0) == "part_1.0123456789ab-0000"
    assert partition_key("data/train-00000-of-00004.parquet", 1) == (
        "data.train-00000-of-00004-0001"
    )
    weird = partition_key("weird name (1).parquet", 12)
    assert re.fullmatch(r"weird_name__1_\.\.[0-9a-f]{8}-0012", weird)
    assert weird != partition_key("weird_name__1_.parquet", 12)
    keys = [partition_key(f"shard_{i:05d}.parquet", s) for i in range(3) for s in range(11)]
    assert keys == sorted(keys)
    paths = sorted(f"part_{p}/{h * 32}.parquet" for p in (1, 2, 10) for h in "0af")
    keys = [partition_key(path, 0) for path in paths]
    assert keys == sorted(keys)  # in the order of the paths


def test_hex_names_sharing_a_key_prefix_are_refused_not_merged(tmp_path: Path) -> None:
    first, second = "0123456789ab" + "0" * 20, "0123456789ab" + "f" * 20
    _urls(tmp_path, [f"{first}.parquet"])
    known = discover_slices(_spec(tmp_path), {})
    _urls(tmp_path, [f"{second}.parquet"])
    found = _again(_spec(tmp_path), known.manifest)
    assert found.manifest == known.manifest and found.to_run == []
    [problem] = found.problems
    assert problem.file == f"{second}.parquet"
    assert f"{first}.parquet" in problem.message and "0123456789ab-0000" in problem.message


def test_a_corrupt_file_is_named_skipped_and_reported(tmp_path: Path) -> None:
    source = tmp_path / "source"
    good = write_datacomp_shard(source, _rows(25))
    (source / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    truncated = write_datacomp_shard(source, _rows(25, offset=100))
    truncated.write_bytes(truncated.read_bytes()[:-20])
    pq.write_table(pa.table({"URL": ["http://a/x.jpg"]}), source / "no_url.parquet")
    found = discover_slices(_spec(source), {})
    assert {piece.file for piece in found.manifest.values()} == {good.name}
    assert len(found.to_run) == 3
    problems = {problem.file: problem.message for problem in found.problems}
    assert problems.keys() == {"broken.parquet", truncated.name, "no_url.parquet"}
    assert str(source / "broken.parquet") in problems["broken.parquet"]
    assert "parquet" in problems[truncated.name].lower()
    assert "'url'" in problems["no_url.parquet"] and "URL" in problems["no_url.parquet"]


def test_a_file_that_turns_corrupt_keeps_its_partitions(tmp_path: Path) -> None:
    source = tmp_path / "source"
    path = write_datacomp_shard(source, _rows(25))
    first = discover_slices(_spec(source), {})
    path.write_bytes(b"garbage")
    found = _again(_spec(source), first.manifest)
    assert found.manifest == first.manifest
    assert found.to_run == [] and found.removed == []
    assert [problem.file for problem in found.problems] == [path.name]


def test_a_file_needing_more_than_9999_slices_is_refused(tmp_path: Path) -> None:
    _urls(tmp_path, ["big.parquet"], rows=10_001)
    _urls(tmp_path / "more", ["small.parquet"], rows=3)
    found = discover_slices(_spec(tmp_path, rows=1), {})
    assert {piece.file for piece in found.manifest.values()} == {"more/small.parquet"}
    [problem] = found.problems
    assert problem.file == "big.parquet" and "rows_per_partition" in problem.message
