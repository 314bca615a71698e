"""Pick an index key with autofaiss's heuristics, then create and train it with faiss directly.

autofaiss 2.18's own ``index_factory`` wrapper breaks on faiss 1.15: for ``OPQ..,IVF..,PQ..`` keys
(what its memory budget picks at DataComp scale) it calls ``faiss.OPQMatrix(d, M=.., d2=..)``,
keywords the faiss 1.15 wrapper rejects; and it parses ``IVF.._HNSW..,PQ..`` without OPQ as a
plain ``HNSW`` key. ``faiss.index_factory`` builds every one of these keys with the right metric
on the whole chain (checked by :func:`create_index`), so only the *choice* is left to autofaiss,
and where that choice is compressed codes the build measures two-stage keys instead
(:func:`refine_candidates`, ``two_stage``, ``calibrate``).
"""

from __future__ import annotations

import faiss
from autofaiss.external.metadata import IndexMetadata
from autofaiss.external.optimize import (
    get_optimal_index_keys_v2,
    index_key_to_nb_cluster,
)

from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.two_stage import candidate_keys, estimated_bytes, fitting_keys

# 100 points per centroid of a PQx8 codebook (256 centroids), faiss's comfortable range.
PQ_TRAINING_VECTORS = 25_600
# k-means points per coarse list: faiss warns below 39 and samples at most 256; 64 keeps the
# 2,048-list k-means of a 4M two-stage build to 131,072 points.
TRAINING_VECTORS_PER_LIST = 64

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
    if ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ):
        # index_factory turns on polysemous training for 8-bit PQ (minutes of annealing, for a
        # Hamming filter we never enable); autofaiss's own IVFPQ has it off.
        faiss.downcast_index(ivf).do_polysemous_training = False
    if ef_construction:
        for level in levels:
            level = faiss.downcast_index(level)
            if isinstance(level, faiss.IndexHNSW):
                level.hnsw.efConstruction = ef_construction
    return index


def refine_candidates(key: str, nb_vectors: int, dim: int, settings: IndexSettings) -> list[str]:
    """The two-stage keys to measure instead of autofaiss's ``key``: those that fit the budget,
    when ``settings.refine`` is on, no key is forced, and ``key`` is compressed (PQ codes)."""
    if not settings.refine or settings.index_key or "PQ" not in key:
        return []
    return fitting_keys(nb_vectors, dim, settings.max_index_memory_usage)


def index_bytes(key: str, nb_vectors: int, dim: int) -> int | None:
    """Estimated size of the built index, ``None`` where neither we nor autofaiss model it."""
    if key in candidate_keys(nb_vectors, dim):
        return estimated_bytes(key, nb_vectors, dim)
    size = IndexMetadata(key, nb_vectors, dim).estimated_index_size_in_bytes()
    return int(size) if size > 0 else None


def training_size(nb_vectors: int, key: str, settings: IndexSettings) -> int:
    """Vectors to train ``key`` on: ``TRAINING_VECTORS_PER_LIST`` per IVF list, at least
    ``PQ_TRAINING_VECTORS`` when the key has product-quantizer codebooks (which need far more
    points than a small IVF), never more than exist nor ``settings.max_training_vectors``.

    autofaiss's own rule (100 per list, bounded only by ``current_memory_available``) asks
    1.6M vectors at DataComp small: hours of k-means on a few cores, and a sample that grows
    with the data; faiss subsamples PQ and OPQ training to 65,536 points anyway.
    """
    size = 0
    if "IVF" in key or "IMI" in key:
        size = index_key_to_nb_cluster(key) * TRAINING_VECTORS_PER_LIST
    if "PQ" in key or "IVF" not in key:
        size = max(size, PQ_TRAINING_VECTORS)
    return min(nb_vectors, size, settings.max_training_vectors)
