"""Choose search parameters: the cheapest setting that reaches the recall target.

autofaiss spends its whole latency budget (efSearch=4314 where 64 already gives recall@10 0.985);
we walk the index's parameter grid from cheap to expensive, measure recall and latency at each
step, and stop a little after the target is met. The walk is kept as the recall curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from clip_assets.index.params import apply_search_params, search_grid
from clip_assets.index.recall import latency_ms, search_recall

# Points measured past the chosen one, so the curve shows what more effort would buy.
EXTRA_POINTS_AFTER_TARGET = 2
# When the target is out of reach, take the cheapest point within this of the best recall seen.
PLATEAU_TOLERANCE = 0.005
# Stop walking when this many more steps gained less than PLATEAU_GAIN recall in total: the index
# (e.g. PQ codes) caps recall, and more effort only costs latency.
PLATEAU_STEPS = 3
PLATEAU_GAIN = 0.001


@dataclass(frozen=True)
class QuerySet:
    """Queries with their exact neighbours; ``self_ids[i]`` is query i's own faiss id (or -1), or
    ``None`` when no query is an indexed vector (text queries); ``exact_scores`` are the exact
    neighbours' similarities (ties then count, see ``recall``)."""

    name: str
    vectors: np.ndarray
    exact: np.ndarray
    self_ids: np.ndarray | None
    exact_scores: np.ndarray | None = None


@dataclass
class TuneResult:
    """The chosen parameters and every point measured on the way."""

    params: dict[str, int]
    target_met: bool
    curve: list[dict[str, Any]] = field(default_factory=list)


def _plateaued(recalls: list[float]) -> bool:
    if len(recalls) <= PLATEAU_STEPS:
        return False
    return max(recalls[-PLATEAU_STEPS:]) - max(recalls[:-PLATEAU_STEPS]) < PLATEAU_GAIN


class _Walk:
    """Measures points of the grid and keeps them as the curve."""

    def __init__(
        self, index: faiss.Index, query_sets: list[QuerySet], k: int, latency_queries: int
    ):
        self.index, self.query_sets, self.k = index, query_sets, k
        self.latency_queries = latency_queries
        self.curve: list[dict[str, Any]] = []

    def measure(self, params: dict[str, int]) -> dict[str, Any]:
        apply_search_params(self.index, params)
        k, sets = self.k, self.query_sets
        recalls = {
            qs.name: search_recall(
                self.index, qs.vectors, qs.exact, qs.self_ids, k, qs.exact_scores
            )
            for qs in sets
        }
        speed = latency_ms(self.index, sets[0].vectors, k, self.latency_queries) if sets else {}
        point = {
            "params": params,
            f"recall@{k}": min((r[f"recall@{k}"] for r in recalls.values()), default=1.0),
            "by_query_set": recalls,
            "p50_ms": speed.get("p50"),
            "p99_ms": speed.get("p99"),
            "cpu_p50_ms": speed.get("cpu_p50"),
        }
        self.curve.append(point)
        return point


def cost(point: dict[str, Any]) -> float:
    """What settings are compared by: single-query CPU time (p50), which a busy shared machine
    leaves nearly unchanged, where wall time varies with the share of the cores a run gets."""
    return point["cpu_p50_ms"] or 0.0


def _slower(point: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Whether ``point`` already costs more than the best setting found: along a row effort
    only grows, so nothing cheaper lies further on."""
    return best is not None and cost(point) > cost(best)


def tune_search_params(
    index: faiss.Index,
    query_sets: list[QuerySet],
    *,
    target: float,
    k: int,
    latency_queries: int,
) -> TuneResult:
    """Walk :func:`search_grid` and return the cheapest setting whose recall@k reaches ``target``
    on every query set; leaves that setting applied on ``index``.

    Each row is walked from cheap to expensive and its first point that meets the target is the
    row's pick; across rows (a two-stage index has one per ``k_factor_rf``, most re-ranking
    first) the pick with the lowest single-query :func:`cost` wins. Re-ranking fewer results
    cannot raise recall, so a row starts where the previous row met the target. A row stops a
    little past its pick, on a recall plateau, or once it is slower than the best pick so far.
    If no setting reaches the target, picks the cheapest point within ``PLATEAU_TOLERANCE`` of
    the best recall measured (e.g. a PQ index whose codes cap recall) and reports
    ``target_met=False``.
    """
    walk = _Walk(index, [qs for qs in query_sets if len(qs.vectors)], k, latency_queries)
    name = f"recall@{k}"
    best: dict[str, Any] | None = None
    first = 0  # rows re-rank less and less: none meets the target earlier than the last did
    for row in search_grid(index):
        row_points: list[dict[str, Any]] = []
        picked: int | None = None
        for position, params in enumerate(row[first:], start=first):
            point = walk.measure(params)
            row_points.append(point)
            if picked is None and point[name] >= target:
                picked = len(row_points) - 1
                first = position
                if best is None or cost(point) < cost(best):
                    best = point
            if picked is not None and (
                best is not row_points[picked]  # this row's pick lost: no curve past it
                or len(row_points) - 1 - picked >= EXTRA_POINTS_AFTER_TARGET
            ):
                break
            if picked is None and (
                _slower(point, best) or _plateaued([p[name] for p in row_points])
            ):
                break
    target_met = best is not None
    if best is None:
        top = max(point[name] for point in walk.curve)
        near = [point for point in walk.curve if point[name] >= top - PLATEAU_TOLERANCE]
        best = min(near, key=cost)
    apply_search_params(index, best["params"])
    return TuneResult(params=dict(best["params"]), target_met=target_met, curve=walk.curve)
