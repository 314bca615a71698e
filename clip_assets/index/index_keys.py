"""Pick an index key with autofaiss's heuristics, then create and train it with faiss directly.

autofaiss 2.18's own ``index_factory`` wrapper breaks on faiss 1.15: for ``OPQ..,IVF..,PQ..`` keys
(what its memory budget picks at DataComp scale) it calls ``faiss.OPQMatrix(d, M=.., d2=..)``,
keywords the faiss 1.15 wrapper rejects; and it parses ``IVF.._HNSW..,PQ..`` without OPQ as a
plain ``HNSW`` key. ``faiss.index_factory`` builds every one of these keys with the right metric
on the whole chain (checked by :func:`create_index`), so only the *choice* is left to autofaiss.
"""

from __future__ import annotations

import faiss
from autofaiss.external.optimize import (
    get_optimal_index_keys_v2,
    get_optimal_train_size,
    index_key_to_nb_cluster,
)

from clip_assets.index.index_settings import IndexSettings

# 100 points per centroid of a PQx8 codebook (256 centroids), faiss's comfortable range.
PQ_TRAINING_VECTORS = 25_600

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def choose_index_key(nb_vectors: int, dim: int, settings: IndexSettings) -> tuple[str, str]:
    """The faiss key to build and why: the override, else autofaiss's first choice for this size
    and memory budget (with ``Flat`` instead of an IVF too small to train)."""
    if settings.index_key:
        if "IVF" in settings.index_key and index_key_to_nb_cluster(settings.index_key) > nb_vectors:
            raise ValueError(
                f"index_key {settings.index_key} has more IVF lists than the {nb_vectors} "
                "vectors to train them; lower it or leave index_key unset"
            )
        return settings.index_key, "settings.index_key override"
    keys = get_optimal_index_keys_v2(
        nb_vectors,
        dim,
        settings.max_index_memory_usage,
        should_be_memory_mappable=settings.should_be_memory_mappable,
    )
    if not keys:
        raise ValueError(
            f"autofaiss finds no index for {nb_vectors} x {dim} within "
            f"max_index_memory_usage={settings.max_index_memory_usage}"
        )
    if nb_vectors < settings.min_vectors_for_ivf and "IVF" in keys[0]:
        # faiss 1.15 can mmap flat codes (IO_FLAG_MMAP_IFC), so Flat stays memory-mappable.
        return "Flat", f"autofaiss chose {keys[0]}; below min_vectors_for_ivf, Flat is exact"
    return keys[0], f"autofaiss get_optimal_index_keys_v2 (max {settings.max_index_memory_usage})"


def create_index(
    key: str, dim: int, metric_type: str, ef_construction: int | None = None
) -> faiss.Index:
    """An empty index for ``key``; raises if any level of it does not use ``metric_type``.

    ``ef_construction`` applies to the HNSW graph, whether the index or its coarse quantizer.
    """
    metric = METRICS[metric_type]
    index = faiss.index_factory(dim, key, metric)
    ivf = faiss.try_extract_index_ivf(index)
    levels = [index] + ([ivf, ivf.quantizer] if ivf is not None else [])
    wrong = [type(level).__name__ for level in levels if level.metric_type != metric]
    if wrong:
        raise ValueError(f"{key}: {wrong} do not use metric {metric_type}")
    if ef_construction:
        for level in levels:
            level = faiss.downcast_index(level)
            if isinstance(level, faiss.IndexHNSW):
                level.hnsw.efConstruction = ef_construction
    return index


def training_size(nb_vectors: int, key: str, dim: int, settings: IndexSettings) -> int:
    """Vectors to train ``key`` on, never more than exist: autofaiss's IVF rule (up to 100 per
    centroid, bounded by ``current_memory_available``), raised to ``PQ_TRAINING_VECTORS`` when the
    key has product-quantizer codebooks, which need far more points than a small IVF."""
    size = 0
    if "IVF" in key or "IMI" in key:
        try:
            size = int(
                get_optimal_train_size(nb_vectors, key, settings.current_memory_available, dim)
            )
        except ZeroDivisionError:  # autofaiss has no memory model for this key (e.g. IVF_HNSW,Flat)
            size = 100 * index_key_to_nb_cluster(key)
    if "PQ" in key or "IVF" not in key:
        size = max(size, PQ_TRAINING_VECTORS)
    return min(nb_vectors, size)
