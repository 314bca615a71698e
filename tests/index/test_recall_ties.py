"""Recall where the data holds the same picture many times: ties count, but only when the index
reports exact similarities; and a build over duplicated data passes its own recall check."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow.parquet as pq
from conftest import FAST
from index_samples import clustered, embeddings_table

from clip_assets.index import EmbeddingShard, IndexSettings, build_index, check_recall
from clip_assets.index.recall import ExactNeighbors, search_recall

DIM = 16


def duplicated(pictures: int, copies: int) -> np.ndarray:
    """``pictures`` distinct vectors, each ``copies`` times, shuffled (one picture at many URLs)."""
    distinct = clustered(pictures, DIM, seed=3)
    return distinct[np.random.default_rng(4).permutation(np.repeat(np.arange(pictures), copies))]


def truth(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    exact = ExactNeighbors(queries, k, faiss.METRIC_INNER_PRODUCT)
    exact.add(0, vectors)
    return exact.result(), exact.scores()


def test_ties_count_when_the_index_reports_exact_similarities():
    vectors = duplicated(pictures=50, copies=40)
    queries = vectors[:200] + 1e-3 * np.random.default_rng(5).normal(size=(200, DIM))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    ids, scores = truth(vectors, queries, 10)
    flat = faiss.IndexFlatIP(DIM)  # exact, but it breaks ties its own way
    flat.add(np.ascontiguousarray(vectors[::-1]))  # reversed ids: other copies first
    reversed_ids = len(vectors) - 1 - ids
    by_id = search_recall(flat, queries, reversed_ids, None, 10)["recall@10"]
    with_ties = search_recall(flat, queries, reversed_ids, None, 10, scores)
    assert by_id < 0.5  # ten arbitrary copies of forty: mostly other ids
    assert with_ties["recall@10"] == 1.0 and with_ties["recall@1"] == 1.0
    # PQ codes give approximate similarities: ties must not count, whatever their ids.
    pq_index = faiss.index_factory(DIM, "PQ4x4", faiss.METRIC_INNER_PRODUCT)
    pq_index.train(vectors)
    pq_index.add(np.ascontiguousarray(vectors[::-1]))
    approximate = search_recall(pq_index, queries, reversed_ids, None, 10, scores)["recall@10"]
    assert approximate == search_recall(pq_index, queries, reversed_ids, None, 10)["recall@10"]


def test_a_build_over_heavily_duplicated_vectors_passes_its_recall_check(tmp_path):
    path = tmp_path / "dups.parquet"
    pq.write_table(embeddings_table(duplicated(pictures=100, copies=60), "d"), path)
    settings = IndexSettings(**{**FAST.to_dict(), "index_key": "HNSW32"})
    infos = build_index([EmbeddingShard("d", path)], tmp_path / "index", settings)
    assert infos["recall"]["image"]["recall@10"] >= 0.95, infos["recall"]
    passed, figures = check_recall(infos, 0.9)  # the blocking check's default threshold
    assert passed, figures


def test_a_graph_that_copies_cut_into_islands_is_replaced_by_an_ivf_that_meets_the_target(
    tmp_path,
):
    # 150 copies of each picture: more than HNSW32's 64 links a vector at its base layer, so
    # every copy links only to copies of itself and a caption query cannot reach most pictures
    # (R10, the million-row rehearsal: 103 copies a picture, text recall@10 0.29).
    vectors = duplicated(pictures=100, copies=150)
    path = tmp_path / "dups.parquet"
    pq.write_table(embeddings_table(vectors, "d"), path)
    captions = np.random.default_rng(9).normal(size=(100, DIM))
    captions = (captions / np.linalg.norm(captions, axis=1, keepdims=True)).astype(np.float32)
    shard = [EmbeddingShard("d", path)]

    infos = build_index(shard, tmp_path / "index", FAST, text_queries=captions)

    rejected = infos["rejected_key"]
    assert rejected["index_key"] == "HNSW32"
    assert rejected["recall@10"] < FAST.tuning_target, rejected
    assert infos["index_key"].startswith("IVF") and infos["index_key"].endswith(",Flat")
    assert "fell back" in infos["key_reason"]
    assert infos["tuning"]["target_met"]
    assert infos["recall"]["text"]["recall@10"] >= FAST.recall_target
    assert infos["recall"]["image"]["recall@10"] >= FAST.recall_target
    assert check_recall(infos, 0.9)[0]
    index = faiss.read_index(str(tmp_path / "index" / "faiss"))
    assert index.ntotal == len(vectors)
    _, found = index.search(vectors[:5], 1)
    assert np.array_equal(vectors[found[:, 0]], vectors[:5])  # faiss ids are the rows

    # A key the settings force is built as asked, and its miss reported, not replaced.
    forced = IndexSettings(**{**FAST.to_dict(), "index_key": "HNSW32"})
    kept = build_index(shard, tmp_path / "forced", forced, text_queries=captions)
    assert kept["index_key"] == "HNSW32" and kept["rejected_key"] is None
    assert not kept["tuning"]["target_met"]
