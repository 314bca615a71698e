"""Coarse quantizer training that keeps IVF lists near even, so a probe costs what it promises.

faiss trains an IVF's coarse lists with 10 iterations of spherical k-means (for inner product),
which leaves crowds of the data in single lists. On 4M CLIP-like vectors the 2,048 lists of
``IVF2048,PQ256x4fs,Refine(SQfp16)`` held a mean of 1,953 vectors and a largest of 85,506 (44x);
the 14 lists over 4x the mean held 6.4% of the data, and image queries, which land in such
crowds, scanned a median 144,567 codes at nprobe 6, twelve times what even lists cost: the first
stage alone took 1.55 ms of the 2.16 ms p50. Here the lists are trained as faiss trains them (the
index's own clustering parameters), then every list whose share of the training sample is over
``split_over`` times the mean is split by a k-means over its own members into lists of about the
mean; the others keep their centroids. A query in a crowd then probes several small lists, as
many as the tuner finds recall needs, instead of one huge one. The centroids go into the index's
quantizer, which ``index.train`` then leaves as it is and trains only the codes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import faiss
import numpy as np

from clip_assets.index.index_keys import create_index
from clip_assets.index.two_stage import lists_of, with_lists


@dataclass(frozen=True)
class CoarseLists:
    """Trained coarse centroids and what the split changed, measured on the training sample."""

    centroids: np.ndarray
    trained_lists: int
    split_lists: int
    largest_share_before: float  # the largest list's share of the sample, over the mean share
    largest_share_after: float

    @property
    def lists(self) -> int:
        """The list count after the split."""
        return len(self.centroids)

    def summary(self) -> dict[str, float | int]:
        """JSON-ready figures for ``index_infos.json`` (without the centroids)."""
        figures = asdict(self)
        del figures["centroids"]
        return {**figures, "lists": self.lists}


def _kmeans(
    vectors: np.ndarray, lists: int, metric: int, parameters: faiss.ClusteringParameters
) -> np.ndarray:
    """``lists`` centroids of a k-means over ``vectors``."""
    clustering = faiss.Clustering(vectors.shape[1], lists, parameters)
    flat = faiss.IndexFlat(vectors.shape[1], metric)
    clustering.train(vectors, flat)
    return flat.reconstruct_n(0, lists)


def _assign(centroids: np.ndarray, vectors: np.ndarray, metric: int) -> np.ndarray:
    """Each vector's list (its nearest centroid)."""
    flat = faiss.IndexFlat(centroids.shape[1], metric)
    flat.add(centroids)
    return flat.search(vectors, 1)[1][:, 0]


def train_coarse_lists(index: faiss.Index, train: np.ndarray, split_over: float) -> CoarseLists:
    """The coarse centroids of ``index`` (an untrained IVF, or a refine index over one) trained
    on ``train`` with the index's clustering parameters, each list holding more than
    ``split_over`` times the mean share of ``train`` replaced by ``ceil(its size / mean)``
    centroids of a k-means over its members (``split_over`` of 0 splits nothing)."""
    ivf = faiss.extract_index_ivf(index)
    lists, metric, parameters = ivf.nlist, ivf.metric_type, ivf.cp
    train = np.ascontiguousarray(train, dtype=np.float32)
    centroids = _kmeans(train, lists, metric, parameters)
    assigned = _assign(centroids, train, metric)
    sizes = np.bincount(assigned, minlength=lists)
    mean = len(train) / lists
    largest = float(sizes.max() / mean)
    crowded = np.flatnonzero(sizes > split_over * mean) if split_over > 0 else []
    if len(crowded) == 0:
        return CoarseLists(centroids, lists, 0, largest, largest)
    parts = [np.delete(centroids, crowded, axis=0)]
    for crowd in crowded:
        members = train[assigned == crowd]
        parts.append(_kmeans(members, math.ceil(len(members) / mean), metric, parameters))
    split = np.concatenate(parts)
    after = np.bincount(_assign(split, train, metric), minlength=len(split))
    return CoarseLists(split, lists, len(crowded), largest, float(after.max() / mean))


def create_split_index(
    key: str, dim: int, metric_type: str, coarse: CoarseLists
) -> tuple[str, faiss.Index]:
    """``key`` with the split's list count, and an empty index of it whose quantizer holds
    ``coarse``'s centroids, so that ``index.train`` trains only the codes."""
    key = with_lists(key, coarse.lists)
    index = create_index(key, dim, metric_type)
    faiss.extract_index_ivf(index).quantizer.add(coarse.centroids)
    return key, index


def splits_lists(key: str) -> bool:
    """Whether ``key``'s coarse lists can be trained here: its IVF is its first layer (no
    pre-transform such as OPQ, whose space the centroids must live in) over a flat quantizer."""
    return key.startswith("IVF") and lists_of(key) > 1 and "_" not in key.split(",")[0]
