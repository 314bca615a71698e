"""Choose the index key among candidates by measuring each one on a sample of the data.

Each candidate is built over the calibration sample (a uniform random sample of the vectors and
the exact neighbourhoods of the anchor queries, :mod:`neighbourhoods`; disjoint from the
queries) with its IVF list count scaled by sample / total, so its lists hold as many vectors as
the full index's will, a probe scans as much, and around each anchor the vectors are as crowded
as in the full index. Stages are shared: one k-means per list count (its crowded lists split as
the build splits them, :mod:`coarse`), one trained first stage per first-stage key, one set of
refine codes per code type, paired as each candidate needs (so four two-stage candidates cost
two first stages and two refine stages). Each is tuned like the real build
(:func:`tune_search_params` on the anchors, image and text, exact neighbours taken over the
sample: their exact neighbours over the data, since their neighbourhoods are in it), and the one
that reaches ``settings.tuning_target`` with the highest recall ceiling, among those within
``LATENCY_SLACK`` of the lowest single-query CPU time (p50), is built; if none reaches it, the
one with the best recall. Every candidate's curve is kept for ``index_infos.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from clip_assets.index.coarse import CoarseLists, create_split_index, train_coarse_lists
from clip_assets.index.index_keys import METRICS, create_index
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.recall import ExactNeighbors
from clip_assets.index.tune import QuerySet, cost, tune_search_params
from clip_assets.index.two_stage import estimated_bytes, lists_of, split_refine, with_lists

# Single-query searches timed per point: CPU time's median settles within 100.
CALIBRATION_LATENCY_QUERIES = 100
# The sample reproduces the data's density only around the anchors (their probes also reach
# sparse lists the full index has crowded), so recall on it still flatters an index somewhat.
# Among the candidates within this factor of the cheapest one's latency, the one whose recall
# curve reaches highest (its headroom) is built.
LATENCY_SLACK = 2.0


@dataclass(frozen=True)
class Calibration:
    """The chosen key, why, and what was measured for every candidate."""

    key: str
    reason: str
    candidates: list[dict[str, Any]]


class _Stages:
    """Calibration indexes over the sample, each stage trained (on the sample's first
    ``train_rows``, its uniform part: the neighbourhoods would skew centroids and codebooks
    towards the anchors, and training on them costs minutes) and filled once: one k-means per
    list count, one first stage per first-stage key, one set of refine codes per code type; a
    two-stage candidate pairs a first stage with refine codes (``faiss.IndexRefine``)."""

    def __init__(self, sample: np.ndarray, train_rows: int, settings: IndexSettings) -> None:
        self.sample, self.settings = sample, settings
        self.train = sample[: max(1, train_rows)]
        self._coarse: dict[int, CoarseLists] = {}
        self._built: dict[str, faiss.Index] = {}

    def _coarse_lists(self, key: str) -> CoarseLists:
        lists = lists_of(key)
        if lists not in self._coarse:
            index = create_index(key, self.sample.shape[1], self.settings.metric_type)
            split_over = self.settings.split_lists_over
            self._coarse[lists] = train_coarse_lists(index, self.train, split_over)
        return self._coarse[lists]

    def _first_stage(self, key: str) -> faiss.Index:
        if key not in self._built:
            coarse = self._coarse_lists(key)
            _, index = create_split_index(
                key, self.sample.shape[1], self.settings.metric_type, coarse
            )
            index.train(self.train)  # the codes; the quantizer holds the (split) lists
            index.add(self.sample)
            self._built[key] = index
        return self._built[key]

    def _codes(self, codes: str) -> faiss.Index:
        if codes not in self._built:
            index = create_index(codes, self.sample.shape[1], self.settings.metric_type)
            index.train(self.train)
            index.add(self.sample)
            self._built[codes] = index
        return self._built[codes]

    def index(self, key: str) -> faiss.Index:
        """The calibration index for ``key`` (IVF lists already scaled to the sample)."""
        first_stage, codes = split_refine(key)
        base = self._first_stage(first_stage)
        return base if codes is None else faiss.IndexRefine(base, self._codes(codes))


def _measure_candidate(
    key: str,
    nb_vectors: int,
    stages: _Stages,
    query_sets: list[QuerySet],
    settings: IndexSettings,
) -> dict[str, Any]:
    sample = stages.sample
    lists = max(1, round(lists_of(key) * len(sample) / nb_vectors))
    small_key = with_lists(key, lists)
    started = time.perf_counter()
    index = stages.index(small_key)
    built_s = time.perf_counter() - started
    k = query_sets[0].exact.shape[1]
    tuned = tune_search_params(
        index,
        query_sets,
        target=settings.tuning_target,
        k=k,
        latency_queries=min(settings.latency_queries, CALIBRATION_LATENCY_QUERIES),
    )
    chosen = next(point for point in tuned.curve if point["params"] == tuned.params)
    return {
        "index_key": key,
        "calibration_key": small_key,
        "estimated_bytes": estimated_bytes(key, nb_vectors, sample.shape[1]),
        "target_met": tuned.target_met,
        "search_params": tuned.params,
        f"recall@{k}": chosen[f"recall@{k}"],
        "p50_ms": chosen["p50_ms"],
        "cpu_p50_ms": chosen["cpu_p50_ms"],
        "best_recall": max(point[f"recall@{k}"] for point in tuned.curve),
        "build_s": built_s,
        "curve": tuned.curve,
    }


def calibrate(
    keys: list[str],
    nb_vectors: int,
    sample: np.ndarray,
    queries: dict[str, np.ndarray],
    settings: IndexSettings,
    train_rows: int | None = None,
    on_measured: Callable[[dict[str, Any]], None] | None = None,
) -> Calibration:
    """Measure each of ``keys`` (full-size keys for ``nb_vectors``) on ``sample`` with the query
    sets ``queries`` (name -> vectors, none of them in ``sample``) and pick one. Stages train on
    the first ``train_rows`` of ``sample`` (all of it by default); ``on_measured`` sees each
    candidate's figures as they come."""
    queries = {name: vectors for name, vectors in queries.items() if len(vectors)}
    k = min(settings.recall_k, len(sample))
    exact = ExactNeighbors(np.concatenate(list(queries.values())), k, METRICS[settings.metric_type])
    exact.add(0, sample)
    truth, scores = exact.result(), exact.scores()
    query_sets, start = [], 0
    for name, vectors in queries.items():
        rows = slice(start, start + len(vectors))
        query_sets.append(QuerySet(name, vectors, truth[rows], None, scores[rows]))
        start += len(vectors)
    stages = _Stages(sample, len(sample) if train_rows is None else train_rows, settings)
    measured: list[dict[str, Any]] = []
    for key in keys:
        measured.append(_measure_candidate(key, nb_vectors, stages, query_sets, settings))
        if on_measured is not None:
            on_measured(measured[-1])
    met = [c for c in measured if c["target_met"]]
    if met:
        cheapest = min(cost(c) for c in met)
        affordable = [c for c in met if cost(c) <= LATENCY_SLACK * cheapest]
        best = min(affordable, key=lambda c: (-c["best_recall"], cost(c), c["estimated_bytes"]))
        reason = (
            f"highest recall ceiling ({best['best_recall']:.3f}) among the candidates reaching "
            f"recall@{k} >= {settings.tuning_target:.3f} within {LATENCY_SLACK:g}x the cheapest "
            f"one's single-query CPU p50 ({cost(best):.3f} ms, cheapest {cheapest:.3f} ms); "
            f"{len(measured)} candidates measured on {len(sample)} sampled vectors"
        )
    else:
        best = max(measured, key=lambda c: c["best_recall"])
        reason = (
            f"no candidate reached recall@{k} {settings.tuning_target:.3f} on {len(sample)} "
            f"sampled vectors; best recall {best['best_recall']:.3f}"
        )
    return Calibration(best["index_key"], reason, measured)
