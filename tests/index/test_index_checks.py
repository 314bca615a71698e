"""The id mapping and the quality checks: they pass on a good build and fail on broken inputs."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import DIM
from index_samples import embeddings_table, reader

from clip_assets.index import (
    build_id_mapping,
    check_embeddings,
    check_id_mapping,
    check_index_size,
    check_recall,
)
from clip_assets.schemas import ID_MAPPING_SCHEMA


def metadata_reader(shards):
    """shard name -> metadata-like (uid, text) rows, shuffled, the first row's uid missing."""
    read = reader(shards)

    def read_texts(name):
        table = read(name).select(["uid"])
        captions = pc.binary_join_element_wise("caption ", table["uid"], "")
        table = table.append_column("text", captions)
        order = np.random.default_rng(0).permutation(np.arange(1, table.num_rows))
        return table.take(pa.array(order))

    return read_texts


@pytest.fixture(scope="module")
def mapping(ivf_build):
    index_dir, shards, _, _ = ivf_build
    tables = build_id_mapping(index_dir, reader(shards), metadata_reader(shards), chunk_rows=700)
    return index_dir, shards, list(tables)


def test_mapping_covers_every_id_once_in_order_with_captions(mapping):
    _, _, chunks = mapping
    assert [c.num_rows for c in chunks] == [700, 700, 600]  # chunks cross shard boundaries
    assert all(c.schema == ID_MAPPING_SCHEMA for c in chunks)
    table = pa.concat_tables(chunks)
    assert table["i"].to_pylist() == list(range(2000))
    assert table["uid"][1000].as_py() == "p1-0"
    assert table["url"][1999].as_py() == "http://127.0.0.1/p1/999.jpg"
    assert table["text"][5].as_py() == "caption p0-5"
    assert table["text"][0].as_py() is None  # no metadata row for that uid


def test_mapping_refuses_embeddings_changed_since_the_build(ivf_build):
    index_dir, _, vectors, _ = ivf_build
    changed = embeddings_table(vectors[:1000], "p0").take(pa.array(np.arange(999, -1, -1)))
    with pytest.raises(ValueError, match="changed since the index was built"):
        list(build_id_mapping(index_dir, lambda name: changed))


def test_id_mapping_check_passes_on_the_built_mapping(mapping):
    index_dir, shards, chunks = mapping
    passed, metadata = check_id_mapping(index_dir, chunks, reader(shards))
    assert passed, metadata
    assert metadata["expected_ids"] == 2000


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda t: pa.concat_tables([t, t.slice(5, 1)]), "duplicate_ids"),
        (lambda t: t.slice(0, 1999), "missing_ids"),
        (lambda t: t.filter(pc.not_equal(t["i"], 1234)), "missing_ids"),
        (
            lambda t: t.set_column(2, "url", pa.array(t["url"].to_pylist()[::-1])),
            "rows_disagreeing_with_embeddings",
        ),
    ],
    ids=["duplicated-id", "missing-last-id", "missing-middle-id", "shuffled-urls"],
)
def test_id_mapping_check_fails_on_a_broken_mapping(mapping, damage, field):
    index_dir, shards, chunks = mapping
    broken = damage(pa.concat_tables(chunks))
    passed, metadata = check_id_mapping(index_dir, [broken], reader(shards))
    assert not passed
    assert metadata[field] > 0


def test_id_mapping_check_reads_parquet_files(mapping, tmp_path):
    index_dir, shards, chunks = mapping
    paths = []
    for number, chunk in enumerate(chunks):
        paths.append(tmp_path / f"{number:05d}.parquet")
        pq.write_table(chunk, paths[-1])
    assert check_id_mapping(index_dir, paths, reader(shards)).passed


def test_embeddings_check(ivf_build):
    _, shards, vectors, _ = ivf_build
    good = check_embeddings([shard.path for shard in shards], dim=DIM)
    assert good.passed and good.metadata["rows"] == 2000

    scaled = embeddings_table(vectors[:50] * 1.1, "x")
    result = check_embeddings(scaled, dim=DIM)
    assert not result.passed and result.metadata["not_unit_norm_rows"] == 50

    with_nan = vectors[:50].copy()
    with_nan[3, 0] = np.nan
    result = check_embeddings(embeddings_table(with_nan, "x"), dim=DIM)
    assert not result.passed and result.metadata["non_finite_rows"] == 1

    assert not check_embeddings(embeddings_table(vectors[:5], "x"), dim=512).passed


def test_index_size_check(ivf_build, tmp_path):
    index_dir, _, _, _ = ivf_build
    assert check_index_size(index_dir, 2000).passed
    wrong = check_index_size(index_dir, 2001)
    assert not wrong.passed and wrong.metadata["index_rows"] == 2000

    copy = tmp_path / "truncated"
    shutil.copytree(index_dir, copy)
    data = (copy / "faiss").read_bytes()
    (copy / "faiss").write_bytes(data[: len(data) // 2])
    truncated = check_index_size(copy, 2000)
    assert not truncated.passed
    assert "error" in truncated.metadata or truncated.metadata["file_bytes"] < len(data)

    (copy / "faiss").write_bytes(b"not a faiss index")
    garbage = check_index_size(copy, 2000)
    assert not garbage.passed and "error" in garbage.metadata


def test_recall_check_uses_the_measured_figures(ivf_build):
    _, _, _, infos = ivf_build
    measured = infos["recall"]["image"]["recall@10"]
    assert check_recall(infos, threshold=measured).passed
    failed = check_recall(infos, threshold=min(1.0, measured + 0.01) + 1e-9)
    assert not failed.passed and failed.metadata["image_recall@10"] == measured
    assert not check_recall({"index_key": "Flat"}, threshold=0.5).passed
