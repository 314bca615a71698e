"""What a build measures: which queries, their recall against exact search, the tuning walk.

Image queries are vectors of the data itself, preferably the last ids held back from the index
until measured (so they are as new to it as a user's query); text queries are caption
embeddings, which sit apart from the image clusters. Both tune the search parameters; recall is
then reported on held-out image queries the tuning never saw, and on the text queries.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from autofaiss.metrics.reconstruction import reconstruction_error

from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.recall import search_recall
from clip_assets.index.tune import QuerySet, tune_search_params

RECALL_DEFINITION = (
    "recall@1: share of queries whose first result is the exact first neighbour; recall@k: "
    "|approx top-k ∩ exact top-k| / k; exact = flat search over the indexed vectors. Image "
    "queries are the last ids, added only after measuring (queries_in_index false) or, when "
    "there are too few new vectors, indexed vectors whose own id is excluded from both lists. "
    "Ties count: where the index reports exact similarities, a result as similar as the exact "
    "k-th neighbour is a hit (the same picture at many URLs)"
)


def query_ids(
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


def reconstruction_error_pct(index: faiss.Index, vectors: np.ndarray) -> float | None:
    """autofaiss's ``reconstruction error %`` (encode/decode round trip) where the index has
    standalone codes."""
    try:
        decoded = index.sa_decode(index.sa_encode(vectors))
    except RuntimeError:  # HNSW and a few others have no standalone codec
        return None
    return 100.0 * float(reconstruction_error(vectors, decoded))


def tune_and_measure(
    index: faiss.Index,
    truth: np.ndarray,
    truth_scores: np.ndarray,
    samples: dict[str, tuple[np.ndarray, np.ndarray | None]],
    settings: IndexSettings,
    k: int,
) -> tuple[dict[str, int], dict[str, Any]]:
    """Tune on the tuning queries (and text), then measure recall on the held-out ones.

    ``samples`` maps ``tune``/``eval``/``text`` to (vectors, own ids or None); ``truth`` holds
    their exact neighbours in that order, ``truth_scores`` those neighbours' similarities.
    Returns the chosen params and the recall/tuning infos.
    """
    sets, start = {}, 0
    for role, (vectors, own) in samples.items():
        name = "text" if role == "text" else "image"
        rows = slice(start, start + len(vectors))
        sets[role] = QuerySet(name, vectors, truth[rows], own, truth_scores[rows])
        start += len(vectors)
    tuned = tune_search_params(
        index,
        [sets["tune"], sets["text"]],
        target=settings.tuning_target,
        k=k,
        latency_queries=settings.latency_queries,
    )
    recall = {
        qs.name: {
            "queries": len(qs.vectors),
            "held_out": role == "eval",
            **search_recall(index, qs.vectors, qs.exact, qs.self_ids, k, qs.exact_scores),
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
            "target": settings.tuning_target,
            "k": k,
            "target_met": tuned.target_met,
            "queries": {"image": len(sets["tune"].vectors), "text": len(sets["text"].vectors)},
            "curve": tuned.curve,
        },
    }
