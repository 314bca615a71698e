"""Batch retrieval over real faiss indexes: k hits per query, ordering, filters, dedup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from retrieve_samples import N_RANDOM, NEAR_COPIES

from clip_assets.retrieve.query_set import QuerySet
from clip_assets.retrieve.retrieval import read_description, retrieve_to_file
from clip_assets.retrieve.retrieval_summary import preview_markdown
from clip_assets.retrieve.retrieve_settings import DUPLICATE_SIMILARITY, RetrievalSettings
from clip_assets.schemas import RETRIEVAL_SCHEMA
from clip_assets.search import ClipSearcher


def embedding_queries(folder: Path, vectors: np.ndarray, ids: list[str]) -> QuerySet:
    """A parquet query set of embeddings with ids, as Fondant's embedding component reads."""
    path = folder / "queries.parquet"
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])
    pq.write_table(pa.table({"id": ids, "embedding": column}), path)
    return QuerySet(path)


def run(searcher: ClipSearcher, queries: QuerySet, tmp_path: Path, **settings) -> tuple:
    out = tmp_path / "hits.parquet"
    summary = retrieve_to_file(searcher, queries, RetrievalSettings(**settings), out)
    return pq.read_table(out), summary


def test_each_query_gets_k_hits_ordered_by_similarity(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    queries = indexed_vectors[[20, 40, 60]] + 0.04 * rng.standard_normal((3, 64))
    hits, summary = run(
        vector_searcher, embedding_queries(tmp_path, queries, ["a", "b", "c"]), tmp_path, k=7
    )

    assert hits.schema.remove_metadata() == RETRIEVAL_SCHEMA
    assert hits["query_id"].to_pylist() == ["a"] * 7 + ["b"] * 7 + ["c"] * 7
    assert hits["rank"].to_pylist() == list(range(1, 8)) * 3
    for query_id, source in zip("abc", (20, 40, 60), strict=True):
        mine = hits.filter(pa.compute.equal(hits["query_id"], query_id))
        similarity = mine["similarity"].to_numpy()
        assert np.all(np.diff(similarity) <= 0)
        assert mine["id"][0].as_py() == source  # the vector the query was made from
        expected = indexed_vectors[mine["id"].to_numpy()] @ (queries["abc".index(query_id)])
        np.testing.assert_allclose(
            similarity, expected / np.linalg.norm(queries["abc".index(query_id)]), atol=1e-5
        )
        assert mine["caption"][0].as_py() == f"caption {source}"
        assert mine["url"][0].as_py() == f"https://img.example/{source}.jpg"
    assert summary["queries"] == 3 and summary["hits"] == 21 and summary["queries_failed"] == 0
    assert sum(summary["similarity"]["histogram"]["counts"]) == 21
    assert summary["preview"][0]["similarity"] == pytest.approx(
        float(hits["similarity"].to_numpy().max())
    )


def test_batches_give_the_same_result_as_one(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    queries = embedding_queries(tmp_path, indexed_vectors[:50], [f"q{i}" for i in range(50)])
    whole, _ = run(vector_searcher, queries, tmp_path, k=5, batch_size=1024)
    batched, _ = run(vector_searcher, queries, tmp_path, k=5, batch_size=7)
    assert batched.equals(whole)
    assert pq.ParquetFile(tmp_path / "hits.parquet").metadata.num_row_groups == 8  # ceil(50 / 7)


def test_floor_and_cap(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    queries = embedding_queries(tmp_path, indexed_vectors[[10, 11]], ["x", "y"])
    everything, _ = run(vector_searcher, queries, tmp_path, k=30)
    floored, summary = run(vector_searcher, queries, tmp_path, k=30, min_similarity=0.1)
    assert floored["similarity"].to_numpy().min() >= 0.1
    kept = everything.filter(pa.compute.greater_equal(everything["similarity"], 0.1))
    assert floored["id"].to_pylist() == kept["id"].to_pylist()
    assert summary["dropped"]["below_floor"] == everything.num_rows - kept.num_rows

    capped, summary = run(vector_searcher, queries, tmp_path, k=30, max_per_query=3)
    assert capped["query_id"].to_pylist() == ["x"] * 3 + ["y"] * 3
    assert (
        capped["id"].to_pylist()
        == everything.filter(pa.compute.less_equal(everything["rank"], 3))["id"].to_pylist()
    )
    assert summary["dropped"]["over_cap"] == 2 * 27


def test_dedup_drops_same_url_and_near_identical_images_across_queries(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    near = N_RANDOM  # id 200: a near-identical copy of id 0 under its own url
    repeat = N_RANDOM + len(NEAR_COPIES)  # id 205: a fresh vector under id 5's url
    queries = embedding_queries(
        tmp_path,
        indexed_vectors[[0, near, 5, repeat]],
        ["orig", "copy", "url-orig", "url-repeat"],
    )
    plain, _ = run(vector_searcher, queries, tmp_path, k=3)
    assert plain.filter(pa.compute.equal(plain["query_id"], "orig"))["id"].to_pylist()[:2] == [
        0,
        near,
    ]

    hits, summary = run(vector_searcher, queries, tmp_path, k=3, deduplicate=True)
    ids = hits["id"].to_pylist()
    urls = hits["url"].to_pylist()
    assert len(set(urls)) == len(urls)  # no url twice in the whole result
    assert len(set(ids)) == len(ids)
    assert near not in ids  # the copy loses to the original, kept first by query "orig"
    assert repeat not in ids  # id 5 took the url first
    mine = hits.filter(pa.compute.equal(hits["query_id"], "orig"))
    assert mine["rank"].to_pylist() == list(range(1, mine.num_rows + 1))
    assert summary["dropped"]["duplicate"] >= 2

    kept = np.asarray(ids)
    kept_vectors = indexed_vectors[kept]
    cosine = kept_vectors @ kept_vectors.T
    np.fill_diagonal(cosine, 0)
    assert cosine.max() < DUPLICATE_SIMILARITY  # nothing near-identical survives

    exact_only, _ = run(
        vector_searcher, queries, tmp_path, k=3, deduplicate=True, duplicate_similarity=None
    )
    assert near in exact_only["id"].to_pylist()  # another url: only the embedding says "same"
    assert repeat not in exact_only["id"].to_pylist()
    assert summary["deduplication"] == "embedding"


def test_an_index_without_its_vectors_deduplicates_by_url(
    fast_scan_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    repeat = N_RANDOM + len(NEAR_COPIES)  # id 205 repeats id 5's url
    queries = embedding_queries(tmp_path, indexed_vectors[[5, repeat]], ["a", "b"])
    hits, summary = run(fast_scan_searcher, queries, tmp_path, k=5, deduplicate=True)
    assert summary["deduplication"] == "url"
    urls = hits["url"].to_pylist()
    assert len(set(urls)) == len(urls) and "https://img.example/5.jpg" in urls
    assert repeat not in hits["id"].to_pylist()  # id 5 took the url first


def test_dedup_refills_from_deeper_neighbours_up_to_the_cap(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    queries = embedding_queries(tmp_path, indexed_vectors[[1, 1 + N_RANDOM]], ["first", "second"])
    hits, _ = run(vector_searcher, queries, tmp_path, k=12, max_per_query=4, deduplicate=True)
    first = hits.filter(pa.compute.equal(hits["query_id"], "first"))["id"].to_pylist()
    second = hits.filter(pa.compute.equal(hits["query_id"], "second"))["id"].to_pylist()
    assert len(first) == len(second) == 4
    assert not set(first) & set(second)
    assert 1 in first and 1 + N_RANDOM not in second


def test_bad_embeddings_fail_alone_and_wrong_width_fails_the_set(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    rows = indexed_vectors[:4].copy()
    rows[1] = 0.0
    rows[2, 3] = np.nan
    path = tmp_path / "queries.parquet"
    embeddings = [rows[0].tolist(), rows[1].tolist(), rows[2].tolist(), None, rows[3].tolist()]
    pq.write_table(pa.table({"embedding": pa.array(embeddings, pa.list_(pa.float32()))}), path)
    hits, summary = run(vector_searcher, QuerySet(path), tmp_path, k=2)
    assert sorted(set(hits["query_id"].to_pylist())) == ["0", "4"]  # row numbers as ids
    assert summary["failure_reasons"] == {"zero_vector": 1, "not_finite": 1, "missing_embedding": 1}
    assert summary["queries"] == 5 and summary["queries_failed"] == 3

    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"embedding": pa.array([[1.0, 0.0]], pa.list_(pa.float32()))}), narrow)
    with pytest.raises(ValueError, match=r"\[2\] dimensions, the index 64"):
        run(vector_searcher, QuerySet(narrow), tmp_path, k=2)
    assert pq.read_table(tmp_path / "hits.parquet").equals(hits)  # the failed run wrote nothing
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_records_what_made_it(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    queries = embedding_queries(tmp_path, indexed_vectors[:2], ["a", "b"])
    run(vector_searcher, queries, tmp_path, k=4, min_similarity=0.2)
    description = read_description(tmp_path / "hits.parquet")
    assert description["query_set"]["kind"] == "embedding"
    assert description["settings"]["k"] == 4 and description["settings"]["min_similarity"] == 0.2
    assert description["index_vectors"] == len(vector_searcher)


def test_summary_is_plottable_and_previews_the_best_hits(
    vector_searcher: ClipSearcher, indexed_vectors: np.ndarray, tmp_path: Path
) -> None:
    queries = embedding_queries(tmp_path, indexed_vectors[:30], [f"q|{i}" for i in range(30)])
    hits, summary = run(vector_searcher, queries, tmp_path, k=5, batch_size=8)
    similarity = summary["similarity"]
    edges, counts = similarity["histogram"]["edges"], similarity["histogram"]["counts"]
    assert len(edges) == len(counts) + 1 and sum(counts) == hits.num_rows == 150
    values = hits["similarity"].to_numpy()
    assert edges[0] <= values.min() and values.max() <= edges[-1]
    assert similarity["p50"] == pytest.approx(float(np.median(values)), abs=0.01)
    assert similarity["max"] == pytest.approx(1.0, abs=1e-5)

    preview = summary["preview"]
    assert len(preview) == 10
    assert [row["similarity"] for row in preview] == sorted(np.sort(values)[::-1][:10].tolist())[
        ::-1
    ]
    table = preview_markdown(preview)
    lines = table.splitlines()
    assert lines[0].startswith("| query | rank | similarity |") and len(lines) == 12
    assert "q\\|0" in table  # a pipe in a query id cannot break the table
