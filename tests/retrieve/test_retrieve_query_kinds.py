"""Prompts, image URLs, image files and bytes, embedded with the index's own model.json model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from retrieve_samples import CAPTIONS, picture

from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.images import jpeg
from clip_assets.retrieve.query_set import QuerySet, QuerySetError
from clip_assets.retrieve.retrieval import retrieve_to_file
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.search import ClipSearcher

SETTINGS = RetrievalSettings(k=3, allow_private_urls=True)


def retrieve(searcher: ClipSearcher, queries: QuerySet, tmp_path: Path) -> tuple[pa.Table, dict]:
    summary = retrieve_to_file(searcher, queries, SETTINGS, tmp_path / "hits.parquet")
    return pq.read_table(tmp_path / "hits.parquet"), summary


def first_hits(hits: pa.Table) -> dict[str, int]:
    top = hits.filter(pa.compute.equal(hits["rank"], 1))
    return dict(zip(top["query_id"].to_pylist(), top["id"].to_pylist(), strict=True))


def test_prompts_from_csv_use_the_index_model(
    picture_searcher: ClipSearcher, tmp_path: Path
) -> None:
    path = tmp_path / "prompts.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt_id", "prompt"])
        writer.writerows([("007", CAPTIONS[2]), ("008", CAPTIONS[0]), ("009", "   ")])
    hits, summary = retrieve(picture_searcher, QuerySet(path), tmp_path)

    # A prompt's own caption embedding sits in the index at id 8 + n: found at similarity 1.
    assert first_hits(hits) == {"007": 8 + 2, "008": 8 + 0}
    assert hits["query"].to_pylist()[0] == CAPTIONS[2]
    top = hits.filter(pa.compute.equal(hits["rank"], 1))["similarity"].to_numpy()
    np.testing.assert_allclose(top, 1.0, atol=1e-4)
    assert summary["failure_reasons"] == {"empty_query": 1}
    assert picture_searcher.model.model_name.startswith("local-dir:")  # from model.json


def test_image_urls_files_and_bytes_find_their_pictures(
    picture_searcher: ClipSearcher, picture_server: ImageServer, tmp_path: Path
) -> None:
    urls = [picture_server.url(f"/p/{i}.jpg") for i in (3, 5)] + [picture_server.url("/gone.jpg")]
    pq.write_table(
        pa.table({"id": ["u3", "u5", "u-gone"], "image_url": urls}), tmp_path / "u.parquet"
    )
    hits, summary = retrieve(picture_searcher, QuerySet(tmp_path / "u.parquet"), tmp_path)
    assert first_hits(hits) == {"u3": 3, "u5": 5}
    assert summary["failure_reasons"] == {"fetch_error": 1}
    assert "HTTP 404" in summary["failed_examples"][0]["detail"]

    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "six.jpg").write_bytes(picture(6))
    (tmp_path / "pics" / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    files = tmp_path / "files.csv"
    files.write_text("id,image_path\nf6,pics/six.jpg\nfx,pics/missing.jpg\nfb,pics/bad.jpg\n")
    hits, summary = retrieve(picture_searcher, QuerySet(files), tmp_path)
    assert first_hits(hits) == {"f6": 6}
    assert hits["query"].to_pylist()[0] == "pics/six.jpg"
    assert summary["failure_reasons"] == {"missing_file": 1, "not_an_image": 1}

    images = [picture(4), jpeg(16, 16, seed=1)]
    pq.write_table(pa.table({"image": pa.array(images, pa.binary())}), tmp_path / "b.parquet")
    hits, _ = retrieve(picture_searcher, QuerySet(tmp_path / "b.parquet"), tmp_path)
    assert first_hits(hits)["0"] == 4
    assert hits["query"].null_count == hits.num_rows  # bytes have no label


def test_a_decompression_bomb_is_refused_before_decoding(
    picture_searcher: ClipSearcher, tmp_path: Path
) -> None:
    pq.write_table(pa.table({"image": pa.array([picture(0)], pa.binary())}), tmp_path / "b.parquet")
    strict = RetrievalSettings(k=1, max_image_pixels=100)
    summary = retrieve_to_file(
        picture_searcher, QuerySet(tmp_path / "b.parquet"), strict, tmp_path / "h.parquet"
    )
    assert summary["failure_reasons"] == {"decompression_bomb": 1}
    assert pq.read_table(tmp_path / "h.parquet").num_rows == 0


def test_query_sets_from_folders_and_npy(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    folder = tmp_path / "fondant-prompts"
    folder.mkdir()
    for part in range(2):
        rows = indexed_vectors[part * 3 : part * 3 + 3]
        column = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), rows.shape[1])
        ids = [f"p{part}-{i}" for i in range(3)]
        pq.write_table(pa.table({"id": ids, "embedding": column}), folder / f"part.{part}.parquet")
    queries = QuerySet(folder)
    assert (queries.kind, queries.id_column, len(queries)) == ("embedding", "id", 6)
    sizes = [len(b) for b in queries.batches(4)]
    assert sum(sizes) == 6 and max(sizes) <= 4
    summary = retrieve_to_file(
        vector_searcher, queries, RetrievalSettings(k=1), tmp_path / "h.parquet"
    )
    assert summary["hits"] == 6

    np.save(tmp_path / "q.npy", indexed_vectors[7:9])
    hits_path = tmp_path / "n.parquet"
    retrieve_to_file(
        vector_searcher, QuerySet(tmp_path / "q.npy"), RetrievalSettings(k=1), hits_path
    )
    assert pq.read_table(hits_path)["id"].to_pylist() == [7, 8]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,prompt\na,cat\na,dog\n", "appears more than once"),
        ("name,colour\na,red\n", "no query column"),
        ("prompt_id,prompt\n,cat\n", "has no id"),
    ],
)
def test_bad_query_sets_get_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.csv"
    path.write_text(content)
    with pytest.raises(QuerySetError, match=message):
        for _ in QuerySet(path).batches(10):
            pass


def test_missing_or_mixed_query_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(QuerySetError, match="does not exist"):
        QuerySet(tmp_path / "nothing.csv")
    (tmp_path / "a.csv").write_text("prompt\ncat\n")
    pq.write_table(pa.table({"prompt": ["dog"]}), tmp_path / "b.parquet")
    with pytest.raises(QuerySetError, match="both parquet and CSV"):
        QuerySet(tmp_path)
