"""Build the faiss index over embeddings shards, tune it for a recall target and measure it.

Writes, in ``out_dir``: ``faiss`` (raw ``faiss.write_index``), ``shards.json`` (the id order)
and, last, ``index_infos.json``; each atomically (temp file + rename). Faiss ids are shard order
then row order. Vectors are streamed from the parquet files in two passes (one to gather the
training and query samples, one to add everything while the exact neighbours of the queries are
accumulated), so all vectors are never held twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from autofaiss.metrics.reconstruction import reconstruction_error

from clip_assets.index.growth import plan_growth
from clip_assets.index.index_keys import METRICS, choose_index_key, create_index, training_size
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.infos import FORMAT, write_infos
from clip_assets.index.params import param_string
from clip_assets.index.recall import ExactNeighbors, latency_ms, search_recall
from clip_assets.index.shards import (
    EmbeddingShard,
    describe_shards,
    gather_vectors,
    iter_vectors,
    write_shard_list,
)
from clip_assets.index.tune import QuerySet, tune_search_params
from clip_assets.paths import INDEX_NAME, SHARD_LIST_NAME

__all__ = ["EmbeddingShard", "build_index"]

RECALL_DEFINITION = (
    "recall@1: share of queries whose first result is the exact first neighbour; recall@k: "
    "|approx top-k ∩ exact top-k| / k; exact = flat search over the indexed vectors. Image "
    "queries are the last ids, added only after measuring (queries_in_index false) or, when "
    "there are too few new vectors, indexed vectors whose own id is excluded from both lists"
)


def _query_ids(
    n: int, new_from: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Disjoint tuning and evaluation ids, and whether they are held back from the index.

    Preferably the last ``2 * count`` ids, split at random: they are added only after tuning and
    measuring, so they are as new to the index as a user's query. (An HNSW graph links an indexed
    vector to its neighbours, so in-index queries flatter it: at 1M vectors, 0.96 for them vs
    0.92 for fresh ones.) With fewer new vectors than that (tiny or incremental builds), samples
    of indexed ids, each excluded from its own results.
    """
    if n - new_from >= 2 * count and n >= 4 * count:
        ids = rng.permutation(np.arange(n - 2 * count, n))
        return ids[:count], ids[count:], True
    if n >= 2 * count:
        ids = rng.choice(n, 2 * count, replace=False)
        return ids[:count], ids[count:], False
    ids = rng.permutation(n)
    half = max(1, n // 2)
    return ids[:half], (ids[half:] if n > 1 else ids), False


def _reconstruction_error_pct(index: faiss.Index, vectors: np.ndarray) -> float | None:
    """autofaiss's ``reconstruction error %`` (encode/decode round trip) where the index has
    standalone codes."""
    try:
        decoded = index.sa_decode(index.sa_encode(vectors))
    except RuntimeError:  # HNSW and a few others have no standalone codec
        return None
    return 100.0 * float(reconstruction_error(vectors, decoded))


def _measure(
    index: faiss.Index,
    truth: np.ndarray,
    samples: dict[str, tuple[np.ndarray, np.ndarray | None]],
    settings: IndexSettings,
    k: int,
) -> tuple[dict[str, int], dict[str, Any]]:
    """Tune on the tuning queries (and text), then measure recall on the held-out ones.

    ``samples`` maps ``tune``/``eval``/``text`` to (vectors, own ids or None); ``truth`` holds
    their exact neighbours in that order. Returns the chosen params and the recall/tuning infos.
    """
    sets, start = {}, 0
    for role, (vectors, own) in samples.items():
        name = "text" if role == "text" else "image"
        sets[role] = QuerySet(name, vectors, truth[start : start + len(vectors)], own)
        start += len(vectors)
    tuned = tune_search_params(
        index,
        [sets["tune"], sets["text"]],
        target=settings.recall_target,
        k=k,
        latency_queries=settings.latency_queries,
    )
    recall = {
        qs.name: {
            "queries": len(qs.vectors),
            "held_out": role == "eval",
            **search_recall(index, qs.vectors, qs.exact, qs.self_ids, k),
        }
        for role, qs in sets.items()
        if role != "tune" and len(qs.vectors)
    }
    return tuned.params, {
        "recall_k": k,
        "recall@1": recall["image"]["recall@1"],
        f"recall@{k}": recall["image"][f"recall@{k}"],
        "recall": {**recall, "definition": RECALL_DEFINITION},
        "tuning": {
            "target": settings.recall_target,
            "k": k,
            "target_met": tuned.target_met,
            "queries": {"image": len(sets["tune"].vectors), "text": len(sets["text"].vectors)},
            "curve": tuned.curve,
        },
    }


def _write_index(index: faiss.Index, out_dir: Path) -> int:
    """Write ``out_dir/faiss`` atomically; returns its size in bytes."""
    path = out_dir / INDEX_NAME
    tmp = path.with_name(INDEX_NAME + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    return path.stat().st_size


def build_index(
    shards: Sequence[EmbeddingShard],
    out_dir: Path,
    settings: IndexSettings,
    *,
    text_queries: np.ndarray | None = None,
    previous: Path | None = None,
) -> dict[str, Any]:
    """Build (or grow ``previous``), tune, measure and write the index; return the infos written.

    ``text_queries`` (``(m, dim)`` unit-norm text embeddings) join the tuning and get their own
    recall figures. ``previous`` is an earlier build's folder (may be ``out_dir`` itself): its
    trained IVF index takes the new shards without retraining when :func:`plan_growth` allows.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if settings.nb_cores:
        faiss.omp_set_num_threads(settings.nb_cores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, dim = describe_shards(shards)
    n = sum(entry.rows for entry in entries)
    if n == 0:
        raise ValueError("the shards hold no embeddings")
    texts = np.zeros((0, dim), np.float32) if text_queries is None else text_queries
    texts = np.ascontiguousarray(texts, dtype=np.float32)
    if texts.ndim != 2 or texts.shape[1] != dim:
        raise ValueError(f"text_queries must be (m, {dim}), got {texts.shape}")

    plan = plan_growth(previous, entries, settings)
    rng = np.random.default_rng(settings.seed)
    tune_ids, eval_ids, held_out = _query_ids(n, plan.start_id, settings.query_count, rng)
    add_until = n - len(tune_ids) - len(eval_ids) if held_out else n
    if plan.index is None:
        key, key_reason = choose_index_key(n, dim, settings)
        index = create_index(key, dim, settings.metric_type, settings.hnsw_ef_construction)
    else:
        index, key, key_reason = plan.index, plan.index_key, "kept from the previous build"
    train_ids = np.zeros(0, np.int64)
    if not index.is_trained:
        train_ids = rng.choice(n, training_size(n, key, dim, settings), replace=False)

    # Pass 1: training and query vectors together.
    tick = time.perf_counter()
    wanted = np.unique(np.concatenate([tune_ids, eval_ids, train_ids]))
    sample = gather_vectors(shards, dim, wanted, settings.batch_rows)
    tune_q, eval_q = (sample[np.searchsorted(wanted, ids)] for ids in (tune_ids, eval_ids))
    timings["sample"] = time.perf_counter() - tick
    if not index.is_trained:
        tick = time.perf_counter()
        index.train(sample[np.searchsorted(wanted, train_ids)])
        timings["train"] = time.perf_counter() - tick
    del sample  # the training sample can be most of the memory budget

    # Pass 2: add (only the new ids when growing; not yet the held-out queries) and accumulate
    # exact neighbours. In-index queries get one extra neighbour: their own id is dropped.
    extra = 0 if held_out else 1
    k = min(settings.recall_k, add_until - extra)
    queries = np.concatenate([tune_q, eval_q, texts])
    exact = ExactNeighbors(queries, k + extra, METRICS[settings.metric_type]) if k > 0 else None
    tick = time.perf_counter()
    for first_id, vectors in iter_vectors(shards, dim, settings.batch_rows):
        vectors = vectors[: max(0, add_until - first_id)]
        if exact is not None and len(vectors):
            exact.add(first_id, vectors)
        if first_id + len(vectors) > plan.start_id:
            index.add(vectors[max(0, plan.start_id - first_id) :])
    timings["add"] = time.perf_counter() - tick

    search_params: dict[str, int] = {}
    measured: dict[str, Any] = {}
    if exact is not None:  # else a single vector: nothing to recall
        tick = time.perf_counter()
        own = (None, None) if held_out else (tune_ids, eval_ids)
        samples = {"tune": (tune_q, own[0]), "eval": (eval_q, own[1]), "text": (texts, None)}
        search_params, measured = _measure(index, exact.result(), samples, settings, k)
        measured["recall"]["queries_in_index"] = not held_out
        timings["tune"] = time.perf_counter() - tick
    if held_out:
        order = np.argsort(np.concatenate([tune_ids, eval_ids]))
        index.add(np.concatenate([tune_q, eval_q])[order])
    if index.ntotal != n:
        raise RuntimeError(f"index holds {index.ntotal} vectors, shards {n}")
    latency = latency_ms(index, eval_q, max(k, 1), settings.latency_queries)

    tick = time.perf_counter()
    size = _write_index(index, out_dir)
    write_shard_list(entries, out_dir / SHARD_LIST_NAME)
    timings["write"] = time.perf_counter() - tick
    infos = {
        "format": FORMAT,
        "index_key": key,
        "index_param": param_string(search_params),
        "index_path": INDEX_NAME,
        "size in bytes": size,
        "avg_search_speed_ms": latency["avg"],
        "99p_search_speed_ms": latency["p99"],
        "reconstruction error %": _reconstruction_error_pct(index, eval_q),
        "nb vectors": int(index.ntotal),
        "vectors dimension": dim,
        "compression ratio": 4.0 * index.ntotal * dim / size,
        "metric_type": settings.metric_type,
        "search_params": search_params,
        **measured,
        "latency_ms": {**latency, "k": max(k, 1), "threads": faiss.omp_get_max_threads()},
        "mode": plan.mode,
        "mode_reason": plan.reason,
        "key_reason": key_reason,
        "shard_list": SHARD_LIST_NAME,
        "shards": len(entries),
        "timings_s": {**timings, "total": time.perf_counter() - started},
        "settings": settings.to_dict(),
        "versions": {"faiss": faiss.__version__, "autofaiss": version("autofaiss")},
    }
    write_infos(infos, out_dir)
    return infos
