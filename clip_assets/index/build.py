"""Build the faiss index over embeddings shards, tune it for a recall target and measure it.

Writes, in ``out_dir``: ``faiss`` (raw ``faiss.write_index``), ``shards.json`` (the id order)
and, last, ``index_infos.json``; each atomically (temp file + rename). Faiss ids are shard order
then row order. Vectors are streamed from the parquet files in two passes (one to gather the
training, calibration and query samples, one to add everything while the exact neighbours of the
queries are accumulated), and two more when two-stage candidates are calibrated (finding and
reading the anchors' neighbourhoods, :mod:`neighbourhoods`), so memory holds the index, samples
bounded by ``max_training_vectors`` and the calibration sizes, and one batch, never a second
copy of the vectors. An HNSW graph (autofaiss's pick while float32 vectors fit the budget) that
misses the recall target at every search effort is replaced by an IVF over the vectors, trained
on a fresh sample and filled in one more pass: groups of identical vectors larger than a graph's
neighbour lists cut it into islands (the same picture at many URLs), and an IVF list holds such
a group whole. Each phase is timed and reported to the ``progress`` callback.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from autofaiss.utils.cast import cast_memory_to_bytes

from clip_assets.index.calibrate import Calibration, calibrate
from clip_assets.index.coarse import (
    CoarseLists,
    create_split_index,
    splits_lists,
    train_coarse_lists,
)
from clip_assets.index.evaluation import query_ids, reconstruction_error_pct, tune_and_measure
from clip_assets.index.growth import plan_growth
from clip_assets.index.index_keys import (
    METRICS,
    choose_index_key,
    create_index,
    index_bytes,
    refine_candidates,
    training_size,
)
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.infos import FORMAT, write_infos
from clip_assets.index.neighbourhoods import anchor_queries, neighbourhood_vectors
from clip_assets.index.params import param_string
from clip_assets.index.progress import PhaseClock, ProgressCallback
from clip_assets.index.recall import ExactNeighbors, latency_ms
from clip_assets.index.shards import (
    EmbeddingShard,
    describe_shards,
    gather_vectors,
    iter_vectors,
    write_shard_list,
)
from clip_assets.index.two_stage import ivf_lists, lists_of
from clip_assets.paths import INDEX_NAME, SHARD_LIST_NAME

__all__ = ["EmbeddingShard", "build_index"]


def _write_index(index: faiss.Index, out_dir: Path) -> int:
    """Write ``out_dir/faiss`` atomically; returns its size in bytes."""
    path = out_dir / INDEX_NAME
    tmp = path.with_name(INDEX_NAME + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    return path.stat().st_size


def _sample_ids(n: int, size: int, exclude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``size`` random ids (or all there are) that are not in ``exclude``, in random order;
    memory O(size), not O(n)."""
    size = min(size, n - len(np.unique(exclude)))
    if size <= 0:
        return np.zeros(0, np.int64)
    drawn = rng.choice(n, min(n, size + len(exclude)), replace=False)
    return drawn[~np.isin(drawn, exclude)][:size]


def _check_memory(
    keys: Sequence[str], n: int, dim: int, sample: int, settings: IndexSettings
) -> None:
    """Refuse a build whose index and sample would not fit ``current_memory_available``."""
    sizes = [index_bytes(key, n, dim) or 0 for key in keys]
    needed = max(sizes) + (sample + 2 * settings.batch_rows) * dim * 4
    available = cast_memory_to_bytes(settings.current_memory_available)
    if needed > available:
        raise ValueError(
            f"building {keys[sizes.index(max(sizes))]} over {n} x {dim} needs about "
            f"{needed / 2**30:.1f} GiB (index, {sample} sampled vectors, two batches); "
            f"current_memory_available is {settings.current_memory_available}: raise it, or "
            "lower max_index_memory_usage or max_training_vectors"
        )


def _text_queries(text_queries: np.ndarray | None, dim: int) -> np.ndarray:
    texts = np.zeros((0, dim), np.float32) if text_queries is None else text_queries
    texts = np.ascontiguousarray(texts, dtype=np.float32)
    if texts.ndim != 2 or texts.shape[1] != dim:
        raise ValueError(f"text_queries must be (m, {dim}), got {texts.shape}")
    return texts


def _train(
    key: str, index: faiss.Index, train: np.ndarray, settings: IndexSettings, clock: PhaseClock
) -> tuple[str, faiss.Index, CoarseLists | None]:
    """Train ``index`` on ``train``, first splitting crowded coarse lists where ``key`` allows;
    returns the key, the index and the split (both replaced when lists were split)."""
    coarse: CoarseLists | None = None
    with clock.phase("train", detail=f"{key} on {len(train)} vectors"):
        if settings.split_lists_over and splits_lists(key):
            coarse = train_coarse_lists(index, train, settings.split_lists_over)
            key, index = create_split_index(key, train.shape[1], settings.metric_type, coarse)
        index.train(train)
    return key, index, coarse


def _add(
    index: faiss.Index,
    key: str,
    shards: Sequence[EmbeddingShard],
    dim: int,
    ids: range,
    settings: IndexSettings,
    clock: PhaseClock,
    exact: ExactNeighbors | None,
) -> None:
    """One pass over the shards: add the vectors whose faiss ids are in ``ids`` and fold every
    vector before ``ids.stop`` into ``exact`` (when given)."""
    with clock.phase("add", total=len(ids), detail=key) as adding:
        for first_id, vectors in iter_vectors(shards, dim, settings.batch_rows):
            vectors = vectors[: max(0, ids.stop - first_id)]
            if exact is not None and len(vectors):
                exact.add(first_id, vectors)
            if first_id + len(vectors) > ids.start:
                new = vectors[max(0, ids.start - first_id) :]
                index.add(new)
                adding.advance(len(new))


def _graph_missed_target(
    key: str, settings: IndexSettings, measured: dict[str, Any], grown: bool
) -> bool:
    """Whether a fresh build of autofaiss's HNSW pick (not a key the settings force) missed the
    tuning target at every search effort it measured."""
    chosen = not grown and settings.index_key is None
    return chosen and key.startswith("HNSW") and not measured["tuning"]["target_met"]


def _rejected(key: str, params: dict[str, int], measured: dict[str, Any]) -> dict[str, Any]:
    """What ``index_infos.json`` keeps of a built key that was set aside."""
    k = measured["recall_k"]
    best = max(point[f"recall@{k}"] for point in measured["tuning"]["curve"])
    return {
        "index_key": key,
        "index_param": param_string(params),
        f"recall@{k}": best,
        "recall": {
            name: figures for name, figures in measured["recall"].items() if name != "definition"
        },
        "curve": measured["tuning"]["curve"],
    }


def build_index(
    shards: Sequence[EmbeddingShard],
    out_dir: Path,
    settings: IndexSettings,
    *,
    text_queries: np.ndarray | None = None,
    previous: Path | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Build (or grow ``previous``), tune, measure and write the index; return the infos written.

    ``text_queries`` (``(m, dim)`` unit-norm text embeddings) join the tuning and get their own
    recall figures. ``previous`` is an earlier build's folder (may be ``out_dir`` itself): its
    trained IVF index takes the new shards without retraining when :func:`plan_growth` allows.
    ``progress`` receives each phase's start, its progress (vectors added, rate, ETA) and its
    end; by default they go to this package's logger.
    """
    started = time.perf_counter()
    clock = PhaseClock(progress)
    if settings.nb_cores:
        faiss.omp_set_num_threads(settings.nb_cores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with clock.phase("describe", detail=f"{len(shards)} shards"):
        entries, dim = describe_shards(shards)
    n = sum(entry.rows for entry in entries)
    if n == 0:
        raise ValueError("the shards hold no embeddings")
    texts = _text_queries(text_queries, dim)

    plan = plan_growth(previous, entries, settings)
    rng = np.random.default_rng(settings.seed)
    tune_ids, eval_ids, held_out = query_ids(n, plan.start_id, settings.query_count, rng)
    add_until = n - len(tune_ids) - len(eval_ids) if held_out else n
    candidates: list[str] = []
    index: faiss.Index | None = plan.index
    if index is None:
        key, key_reason = choose_index_key(n, dim, settings)
        candidates = refine_candidates(key, n, dim, settings)
        if not candidates:
            index = create_index(key, dim, settings.metric_type, settings.hnsw_ef_construction)
    else:
        key, key_reason = plan.index_key, "kept from the previous build"
    autofaiss_key = key if candidates else None
    needs_training = index is None or not index.is_trained
    train_size = training_size(n, candidates[0] if candidates else key, settings)
    calibration_size = min(settings.calibration_vectors, n) if candidates else 0
    queries = np.concatenate([tune_ids, eval_ids])
    sample_size = max(train_size, calibration_size) if needs_training else 0
    neighbours = 0
    if candidates:
        per_list = n / lists_of(candidates[0])
        neighbours = max(
            settings.recall_k, round(settings.calibration_neighbourhood_lists * per_list)
        )
    held = sample_size + min(n, settings.calibration_anchors * (neighbours + 1))
    _check_memory(candidates or [key], n, dim, held, settings)
    sample_ids = _sample_ids(n, sample_size, queries, rng)

    # Pass 1: query, training and calibration vectors together (disjoint ids), in that order.
    with clock.phase("sample", detail=f"{len(queries) + len(sample_ids)} vectors"):
        gathered = gather_vectors(
            shards, dim, np.concatenate([queries, sample_ids]), settings.batch_rows
        )
    # Copies: views would keep the whole sample alive after training.
    tune_q, eval_q = gathered[: len(tune_ids)].copy(), gathered[len(tune_ids) : len(queries)].copy()
    sample = gathered[len(queries) :]
    calibration: Calibration | None = None
    if candidates:
        anchors = anchor_queries(tune_q, texts, settings.calibration_anchors)
        detail = f"{neighbours} nearest of {sum(map(len, anchors.values()))} anchors"
        with clock.phase("neighbourhoods", total=n, detail=detail) as finding:
            near = neighbourhood_vectors(
                shards,
                dim,
                np.concatenate(list(anchors.values())),
                neighbours,
                np.concatenate([queries, sample_ids[:calibration_size]]),
                METRICS[settings.metric_type],
                settings.batch_rows,
                on_batch=finding.advance,
            )
        calibration_sample = np.concatenate([sample[:calibration_size], near])
        del near
        detail = f"{len(candidates)} candidates on {len(calibration_sample)} vectors"
        with clock.phase("calibrate", total=len(candidates), detail=detail) as calibrating:
            calibration = calibrate(
                candidates,
                n,
                calibration_sample,
                anchors,
                settings,
                train_rows=calibration_size,
                on_measured=lambda _: calibrating.advance(1),
            )
        del calibration_sample
        key = calibration.key
        key_reason = f"{calibration.reason}; autofaiss's pick for this budget: {autofaiss_key}"
        index = create_index(key, dim, settings.metric_type, settings.hnsw_ef_construction)
    assert index is not None
    coarse: CoarseLists | None = None
    if not index.is_trained:
        key, index, coarse = _train(key, index, sample[:train_size], settings, clock)
    del sample, gathered  # the training sample can be most of the memory budget

    # Pass 2: add (only the new ids when growing; not yet the held-out queries) and accumulate
    # exact neighbours. In-index queries get one extra neighbour: their own id is dropped.
    extra = 0 if held_out else 1
    k = min(settings.recall_k, add_until - extra)
    all_queries = np.concatenate([tune_q, eval_q, texts])
    metric = METRICS[settings.metric_type]
    exact = ExactNeighbors(all_queries, k + extra, metric) if k > 0 else None
    _add(index, key, shards, dim, range(plan.start_id, add_until), settings, clock, exact)

    search_params: dict[str, int] = {}
    measured: dict[str, Any] = {}
    rejected: dict[str, Any] | None = None
    if exact is not None:  # else a single vector: nothing to recall
        own = (None, None) if held_out else (tune_ids, eval_ids)
        samples = {"tune": (tune_q, own[0]), "eval": (eval_q, own[1]), "text": (texts, None)}
        truth = (exact.result(), exact.scores())
        with clock.phase("tune"):
            search_params, measured = tune_and_measure(index, *truth, samples, settings, k)
        if _graph_missed_target(key, settings, measured, plan.index is not None):
            rejected = _rejected(key, search_params, measured)
            del index  # the graph's memory, before the fallback's
            key = f"IVF{ivf_lists(add_until)},Flat"
            key_reason = (
                f"autofaiss chose {rejected['index_key']}, whose best measured recall@{k} "
                f"({rejected[f'recall@{k}']:.3f}) misses the target {settings.tuning_target}: "
                "a graph fails so where a group of identical vectors (the same picture at many "
                "URLs) outgrows its neighbour lists and links only to itself; an IVF list holds "
                "such a group whole, so the build fell back to an IVF over the vectors themselves"
            )
            index = create_index(key, dim, settings.metric_type)
            fallback_train = _sample_ids(n, training_size(n, key, settings), queries, rng)
            with clock.phase("fallback sample", detail=f"{len(fallback_train)} vectors"):
                train = gather_vectors(shards, dim, fallback_train, settings.batch_rows)
            key, index, coarse = _train(key, index, train, settings, clock)
            del train
            _add(index, key, shards, dim, range(0, add_until), settings, clock, None)
            with clock.phase("tune"):
                search_params, measured = tune_and_measure(index, *truth, samples, settings, k)
        measured["recall"]["queries_in_index"] = not held_out
    if held_out:
        order = np.argsort(np.concatenate([tune_ids, eval_ids]))
        index.add(np.concatenate([tune_q, eval_q])[order])
    if index.ntotal != n:
        raise RuntimeError(f"index holds {index.ntotal} vectors, shards {n}")
    latency = latency_ms(index, eval_q, max(k, 1), settings.latency_queries)

    with clock.phase("write"):
        size = _write_index(index, out_dir)
        write_shard_list(entries, out_dir / SHARD_LIST_NAME)
    infos = {
        "format": FORMAT,
        "index_key": key,
        "index_param": param_string(search_params),
        "index_path": INDEX_NAME,
        "size in bytes": size,
        "avg_search_speed_ms": latency["avg"],
        "99p_search_speed_ms": latency["p99"],
        "reconstruction error %": reconstruction_error_pct(index, eval_q),
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
        "autofaiss_key": autofaiss_key,
        "calibrated_key": calibration.key if calibration else None,
        "rejected_key": rejected,
        "candidates": calibration.candidates if calibration else [],
        "training_vectors": train_size if needs_training else 0,
        "coarse_lists": coarse.summary() if coarse else None,
        "shard_list": SHARD_LIST_NAME,
        "shards": len(entries),
        "timings_s": {**clock.timings_s, "total": time.perf_counter() - started},
        "cpu_s": clock.cpu_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "settings": settings.to_dict(),
        "versions": {"faiss": faiss.__version__, "autofaiss": version("autofaiss")},
    }
    write_infos(infos, out_dir)
    return infos
