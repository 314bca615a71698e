"""Deduplication as clip back does it: near-duplicate embeddings (cosine >= 0.94, chained), the
best-ranked of each group kept, over real faiss indexes whose vectors are read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_folders import DIM, storage_layout, unit_vectors

from clip_assets.search import ClipSearcher
from clip_assets.search.dedup import NEAR_DUPLICATE_COSINE, first_of_each_group


def reference_keep(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Connected components by breadth-first search over the full similarity matrix."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    x = embeddings / np.where(norms == 0, 1, norms)
    near = x @ x.T >= threshold
    keep = np.zeros(len(x), dtype=bool)
    seen: set[int] = set()
    for start in range(len(x)):
        if start in seen:
            continue
        keep[start] = True  # the first unseen row is the best-ranked of its group
        frontier = [start]
        seen.add(start)
        while frontier:
            row = frontier.pop()
            for other in np.flatnonzero(near[row]):
                if int(other) not in seen:
                    seen.add(int(other))
                    frontier.append(int(other))
    return keep


def turned(vector: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector at exactly ``cosine`` from the unit ``vector``."""
    other = np.random.default_rng(seed).standard_normal(vector.shape).astype(np.float64)
    other -= other.dot(vector) * vector
    other /= np.linalg.norm(other)
    return cosine * vector + np.sqrt(1 - cosine**2) * other


def test_chains_join_and_the_threshold_is_clip_backs() -> None:
    base = unit_vectors(4, seed=3).astype(np.float64)
    a = base[0]
    b = turned(a, 0.96, seed=1)
    c = turned(b, 0.96, seed=2)  # a and c are further apart than 0.94: joined through b
    assert a.dot(c) < NEAR_DUPLICATE_COSINE
    just_in = turned(base[1], 0.9405, seed=4)
    just_out = turned(base[2], 0.9395, seed=5)
    rows_in_rank_order = np.stack([b, base[1], a, base[2], c, just_out, just_in, base[3]])
    keep = first_of_each_group(rows_in_rank_order.astype(np.float32))
    # b (rank 0) stands for a and c; base[1] for just_in; just_out and base[2] stay apart.
    assert keep.tolist() == [True, True, False, True, False, True, False, True]
    assert NEAR_DUPLICATE_COSINE == 0.94


@pytest.mark.parametrize("max_cells", [1, 97, 4_000_000])
def test_blockwise_groups_match_full_connected_components(max_cells: int) -> None:
    rng = np.random.default_rng(0)
    centres = unit_vectors(25, seed=1)
    members = centres[rng.integers(0, 25, 400)] + rng.normal(0, 0.03, (400, DIM))
    embeddings = np.concatenate([members, unit_vectors(100, seed=2)]).astype(np.float32)
    embeddings = embeddings[rng.permutation(len(embeddings))]
    embeddings[17] = 0  # a row with no direction is nobody's duplicate
    keep = first_of_each_group(embeddings, max_cells=max_cells)
    expected = reference_keep(embeddings, 0.94)
    assert expected[17]
    assert keep.tolist() == expected.tolist()
    assert 120 <= keep.sum() < 140  # ~25 clusters + 100 loners


def near_duplicate_gallery(root: Path, key: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """60 groups of 3 near-identical vectors (cosine ~0.98) plus 60 loners; returns the
    dataset folder, the vectors and each vector's group (loners are their own group)."""
    rng = np.random.default_rng(7)
    centres = unit_vectors(60, seed=11)
    groups = np.concatenate([np.repeat(np.arange(60), 3), np.arange(60, 120)])
    noisy = centres[groups[:180]] + rng.normal(0, 0.02, (180, DIM))
    vectors = np.concatenate([noisy, unit_vectors(60, seed=12)]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ds = storage_layout(root, vectors, key=key, params="nprobe=4" if "IVF" in key else "")
    return ds, vectors, groups


@pytest.mark.parametrize("key", ["Flat", "HNSW16", "IVF4,PQ16x4fs,RFlat"])
def test_deduplicated_search_keeps_the_best_of_each_group_and_refills(
    tmp_path: Path, key: str
) -> None:
    ds, vectors, groups = near_duplicate_gallery(tmp_path, key)
    searcher = ClipSearcher.open(ds)
    assert searcher.dedup_method == "embedding"
    query = vectors[0] + 0.3 * vectors[3] + 0.2 * vectors[6]  # near groups 0, 1 and 2
    unique = searcher.search(query, k=10, deduplicate=True)[0]
    assert len(unique) == 10  # refilled from deeper neighbours
    ids = [r.id for r in unique]
    assert len({groups[i] for i in ids}) == 10
    cosines = vectors[ids] @ vectors[ids].T
    assert (cosines[~np.eye(10, dtype=bool)] < 0.94).all()
    if key == "Flat":  # exact: the shallow and the deep search rank alike
        best_of_group = {}
        for r in searcher.search(query, k=60)[0]:
            best_of_group.setdefault(groups[r.id], r.id)
        assert ids == list(best_of_group.values())[:10]


def test_index_without_stored_vectors_drops_repeated_urls(tmp_path: Path) -> None:
    vectors = unit_vectors(300)
    ds = storage_layout(tmp_path, vectors, key="IVF4,PQ16x4fs", params="nprobe=4")
    searcher = ClipSearcher.open(ds)
    assert searcher.dedup_method == "url"  # fast-scan codes cannot be decoded back
    query = vectors[0] + vectors[1]  # rows 0 and 1 share a url
    plain = searcher.search(query, k=4)[0]
    assert {plain[0].id, plain[1].id} == {0, 1}
    unique = searcher.search(query, k=4, deduplicate=True)[0]
    assert len({r.url for r in unique}) == 4
    assert [r.id for r in unique][:1] == [plain[0].id]
    assert plain[1].id not in [r.id for r in unique]
