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

from clip_assets.index.params import apply_search_params, candidate_params
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
    ``None`` when no query is an indexed vector (text queries)."""

    name: str
    vectors: np.ndarray
    exact: np.ndarray
    self_ids: np.ndarray | None


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


def tune_search_params(
    index: faiss.Index,
    query_sets: list[QuerySet],
    *,
    target: float,
    k: int,
    latency_queries: int,
) -> TuneResult:
    """Walk :func:`candidate_params` and return the cheapest setting whose recall@k reaches
    ``target`` on every query set; leaves that setting applied on ``index``.

    If no setting reaches the target, picks the cheapest one within ``PLATEAU_TOLERANCE`` of the
    best recall measured (e.g. a PQ index whose codes cap recall) and reports ``target_met=False``.
    """
    query_sets = [qs for qs in query_sets if len(qs.vectors)]
    curve: list[dict[str, Any]] = []
    chosen: int | None = None
    for params in candidate_params(index):
        apply_search_params(index, params)
        recalls = {
            qs.name: search_recall(index, qs.vectors, qs.exact, qs.self_ids, k) for qs in query_sets
        }
        worst = min((r[f"recall@{k}"] for r in recalls.values()), default=1.0)
        speed = latency_ms(index, query_sets[0].vectors, k, latency_queries) if query_sets else {}
        curve.append(
            {
                "params": params,
                f"recall@{k}": worst,
                "by_query_set": recalls,
                "p50_ms": speed.get("p50"),
                "p99_ms": speed.get("p99"),
            }
        )
        if chosen is None and worst >= target:
            chosen = len(curve) - 1
        if chosen is not None and len(curve) - 1 - chosen >= EXTRA_POINTS_AFTER_TARGET:
            break
        if chosen is None and _plateaued([point[f"recall@{k}"] for point in curve]):
            break
    target_met = chosen is not None
    if chosen is None:
        best = max(point[f"recall@{k}"] for point in curve)
        chosen = next(
            i for i, point in enumerate(curve) if point[f"recall@{k}"] >= best - PLATEAU_TOLERANCE
        )
    apply_search_params(index, curve[chosen]["params"])
    return TuneResult(params=dict(curve[chosen]["params"]), target_met=target_met, curve=curve)
