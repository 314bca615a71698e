"""Recall against exact search, and single-query latency: the figures ``index_infos.json`` reports.

Definitions (also written into ``index_infos.json``):

- ground truth is an exact (flat) search over every indexed vector;
- recall@1 is the share of queries whose first result is the exact first neighbour;
- recall@k is ``|approximate top-k ∩ exact top-k| / k`` averaged over queries;
- a query that is itself an indexed image embedding does not count itself as a neighbour (its own
  id is dropped from both lists), so an index cannot score by finding the query;
- ties count: where the index reports exact similarities (its last stage holds the vectors
  themselves, float32 or float16, and its similarities agree with the exact ones on the results
  both lists hold), a result as similar as the exact k-th neighbour is a hit even if its id is
  not in that list. Web data holds the same picture at many URLs (placeholders, logos, stock
  photos): with 400 copies of a picture, the exact top 10 are 10 arbitrary copies of it, and an
  index returning 10 others is as right.
"""

from __future__ import annotations

import time

import faiss
import numpy as np


class ExactNeighbors:
    """Exact top-k of fixed queries, accumulated over streamed batches of the indexed vectors."""

    def __init__(self, queries: np.ndarray, k: int, metric: int) -> None:
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = k
        self.metric = metric
        keep_max = metric == faiss.METRIC_INNER_PRODUCT
        self._heap = faiss.ResultHeap(len(queries), k, keep_max=keep_max)
        self._final = False

    def add(self, first_id: int, vectors: np.ndarray) -> None:
        """Fold in vectors whose faiss ids are ``first_id .. first_id + len(vectors) - 1``."""
        if not len(self.queries):
            return
        flat = faiss.IndexFlat(vectors.shape[1], self.metric)
        flat.add(vectors)
        distances, ids = flat.search(self.queries, min(self.k, len(vectors)))
        ids = np.where(ids >= 0, ids + first_id, -1)
        if ids.shape[1] < self.k:  # a batch smaller than k: pad with misses
            pad = self.k - ids.shape[1]
            worst = -np.inf if self.metric == faiss.METRIC_INNER_PRODUCT else np.inf
            distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=worst)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        self._heap.add_result(distances, ids)

    def result(self) -> np.ndarray:
        """``(queries, k)`` exact neighbour ids, best first."""
        if not self._final:
            self._heap.finalize()
            self._final = True
        return self._heap.I

    def scores(self) -> np.ndarray:
        """``(queries, k)`` similarities (inner product) or distances of :meth:`result`."""
        self.result()
        return self._heap.D


#: Largest difference between the index's similarity and the exact one for a result both lists
#: hold at which the index's similarities count as exact (float32 sums in another order differ
#: by ~1e-7; SQ8 or PQ codes by 1e-3 and more).
EXACT_SCORE_TOLERANCE = 1e-5


def drop_self(
    ids: np.ndarray, self_ids: np.ndarray | None, k: int, scores: np.ndarray | None = None
) -> np.ndarray:
    """First ``k`` ids of each row once the query's own id (``self_ids[row]``) is removed; with
    ``scores`` (the rows' similarities), the same positions of ``scores`` instead."""
    values = ids if scores is None else scores
    if self_ids is None:
        return values[:, :k]
    fill = -1 if scores is None else np.nan
    out = np.full((len(ids), k), fill, dtype=values.dtype)
    for row, (found, own) in enumerate(zip(ids, self_ids, strict=True)):
        kept = values[row][found != own][:k]
        out[row, : len(kept)] = kept
    return out


def scores_vectors_exactly(index: faiss.Index) -> bool:
    """Whether ``index`` ranks its results by similarities to the stored vectors themselves:
    a flat last stage (Flat, HNSW over Flat, IVF-Flat, a Flat refine) or float16 codes (exact
    for our float16 embeddings; the agreement check in :func:`recall_scores` catches float32
    ones). PQ, SQ8 and transformed (OPQ) indexes approximate them."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        return scores_vectors_exactly(index.refine_index)
    if isinstance(index, faiss.IndexHNSW):
        return scores_vectors_exactly(index.storage)
    if isinstance(index, faiss.IndexIDMap):
        return scores_vectors_exactly(index.index)
    if isinstance(index, (faiss.IndexFlat, faiss.IndexIVFFlat)):
        return True
    if isinstance(index, (faiss.IndexScalarQuantizer, faiss.IndexIVFScalarQuantizer)):
        return index.sq.qtype == faiss.ScalarQuantizer.QT_fp16
    return False


def _agree(
    approx: np.ndarray, approx_scores: np.ndarray, exact: np.ndarray, exact_scores: np.ndarray
) -> bool:
    """Whether the index's similarities equal the exact ones on every result both lists hold."""
    for a, a_s, e, e_s in zip(approx, approx_scores, exact, exact_scores, strict=True):
        valid = e >= 0
        _, in_a, in_e = np.intersect1d(a, e[valid], return_indices=True)
        if len(in_a) and np.abs(a_s[in_a] - e_s[valid][in_e]).max() > EXACT_SCORE_TOLERANCE:
            return False
    return True


def recall_scores(
    approx: np.ndarray,
    exact: np.ndarray,
    k: int,
    scores: tuple[np.ndarray, np.ndarray, bool] | None = None,
) -> dict[str, float]:
    """recall@1 and recall@k of ``approx`` vs ``exact`` (``(queries, >= k)`` ids, best first).

    ``scores`` (the index's and the exact similarities of those ids, and whether larger is
    better), given for an index that scores the vectors exactly, lets ties count unless the
    similarities disagree (module docstring)."""
    if not len(exact):
        return {}
    approx, exact = approx[:, :k], exact[:, :k]
    valid = exact >= 0
    hit = (approx[:, :, None] == np.where(valid, exact, -2)[:, None, :]).any(axis=2)
    top1 = (approx[:, 0] == exact[:, 0]) & valid[:, 0]
    if scores is not None:
        approx_scores, exact_scores, larger_better = (scores[0][:, :k], scores[1][:, :k], scores[2])
        if _agree(approx, approx_scores, exact, exact_scores):
            sign = 1.0 if larger_better else -1.0
            last = valid.sum(axis=1) - 1
            kth = np.where(last >= 0, exact_scores[np.arange(len(exact)), np.maximum(last, 0)], 0)
            first = exact_scores[:, 0]
            found = approx >= 0
            tolerance = EXACT_SCORE_TOLERANCE
            hit |= found & (sign * (approx_scores - kth[:, None]) >= -tolerance)
            top1 |= found[:, 0] & valid[:, 0] & (sign * (approx_scores[:, 0] - first) >= -tolerance)
    per_query = np.minimum(hit.sum(axis=1), valid.sum(axis=1)) / np.maximum(1, valid.sum(axis=1))
    return {"recall@1": float(np.mean(top1)), f"recall@{k}": float(np.mean(per_query))}


def search_recall(
    index: faiss.Index,
    queries: np.ndarray,
    exact: np.ndarray,
    self_ids: np.ndarray | None,
    k: int,
    exact_scores: np.ndarray | None = None,
) -> dict[str, float]:
    """Search ``queries`` (one batch) and score against ``exact`` (searched with one extra result
    when ``self_ids`` is given, so dropping the query itself still leaves k); with
    ``exact_scores`` (``exact``'s similarities), ties count where they may (module docstring)."""
    if not len(queries):
        return {}
    extra = 0 if self_ids is None else 1
    distances, found = index.search(queries, k + extra)
    scores = None
    if exact_scores is not None and scores_vectors_exactly(index):
        larger_better = index.metric_type == faiss.METRIC_INNER_PRODUCT
        scores = (
            drop_self(found, self_ids, k, distances),
            drop_self(exact, self_ids, k, exact_scores),
            larger_better,
        )
    return recall_scores(drop_self(found, self_ids, k), drop_self(exact, self_ids, k), k, scores)


def latency_ms(index: faiss.Index, queries: np.ndarray, k: int, count: int) -> dict[str, float]:
    """Milliseconds of single-vector searches (a service answers one query at a time) on one
    faiss thread, cycling through ``queries`` for ``count`` searches after one warm-up search.

    ``p50``/``p99``/``avg`` are wall clock; ``cpu_p50``/``cpu_p99`` the same searches' thread CPU
    time, which other work on a shared machine barely moves (it stretches the wall clock
    instead). One thread because faiss parallelises a single query only for some index types,
    and idle OpenMP threads spin on a busy machine.
    """
    if not len(queries) or count <= 0:
        return {}
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.search(queries[:1], k)
        wall, cpu = np.empty(count), np.empty(count)
        for i in range(count):
            query = queries[i % len(queries) : i % len(queries) + 1]
            start, start_cpu = time.perf_counter(), time.thread_time()
            index.search(query, k)
            wall[i] = time.perf_counter() - start
            cpu[i] = time.thread_time() - start_cpu
    finally:
        faiss.omp_set_num_threads(threads)
    wall *= 1000.0
    cpu *= 1000.0
    return {
        "p50": float(np.percentile(wall, 50)),
        "p99": float(np.percentile(wall, 99)),
        "avg": float(wall.mean()),
        "cpu_p50": float(np.percentile(cpu, 50)),
        "cpu_p99": float(np.percentile(cpu, 99)),
        "queries": count,
    }
