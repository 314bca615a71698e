"""Recall against exact search, and single-query latency: the figures ``index_infos.json`` reports.

Definitions (also written into ``index_infos.json``):

- ground truth is an exact (flat) search over every indexed vector;
- recall@1 is the share of queries whose first result is the exact first neighbour;
- recall@k is ``|approximate top-k ∩ exact top-k| / k`` averaged over queries;
- a query that is itself an indexed image embedding does not count itself as a neighbour (its own
  id is dropped from both lists), so an index cannot score by finding the query.
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


def drop_self(ids: np.ndarray, self_ids: np.ndarray | None, k: int) -> np.ndarray:
    """First ``k`` ids of each row once the query's own id (``self_ids[row]``) is removed."""
    if self_ids is None:
        return ids[:, :k]
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for row, (found, own) in enumerate(zip(ids, self_ids, strict=True)):
        kept = found[found != own][:k]
        out[row, : len(kept)] = kept
    return out


def recall_scores(approx: np.ndarray, exact: np.ndarray, k: int) -> dict[str, float]:
    """recall@1 and recall@k of ``approx`` vs ``exact`` (``(queries, >= k)`` ids, best first)."""
    if not len(exact):
        return {}
    top1 = float(np.mean((approx[:, 0] == exact[:, 0]) & (exact[:, 0] >= 0)))
    hits = [
        len(np.intersect1d(a[:k][a[:k] >= 0], e[:k][e[:k] >= 0])) / max(1, int((e[:k] >= 0).sum()))
        for a, e in zip(approx, exact, strict=True)
    ]
    return {"recall@1": top1, f"recall@{k}": float(np.mean(hits))}


def search_recall(
    index: faiss.Index, queries: np.ndarray, exact: np.ndarray, self_ids: np.ndarray | None, k: int
) -> dict[str, float]:
    """Search ``queries`` (one batch) and score against ``exact`` (searched with one extra result
    when ``self_ids`` is given, so dropping the query itself still leaves k)."""
    if not len(queries):
        return {}
    extra = 0 if self_ids is None else 1
    _, found = index.search(queries, k + extra)
    return recall_scores(drop_self(found, self_ids, k), drop_self(exact, self_ids, k), k)


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
