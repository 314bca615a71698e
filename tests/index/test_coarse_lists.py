"""Coarse lists split where the data crowds: faiss's own lists otherwise, recall kept."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from conftest import DIM, FAST
from index_samples import crowded, write_shards

from clip_assets.index import IndexSettings, build_index, open_index
from clip_assets.index.coarse import splits_lists, train_coarse_lists
from clip_assets.index.index_keys import create_index
from clip_assets.index.two_stage import lists_of

KEY = "IVF64,Flat"
ROWS = 12_000


def list_sizes(index: faiss.Index) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])


def test_with_nothing_to_split_the_lists_are_those_faiss_trains():
    vectors = crowded(ROWS, DIM, share=0.0)
    coarse = train_coarse_lists(create_index(KEY, DIM, "ip"), vectors, 4.0)
    reference = create_index(KEY, DIM, "ip")
    reference.train(vectors)
    trained = faiss.extract_index_ivf(reference).quantizer.reconstruct_n(0, 64)
    assert coarse.split_lists == 0 and coarse.lists == 64
    np.testing.assert_allclose(coarse.centroids, trained, atol=1e-6)


def test_a_crowd_is_split_into_lists_of_about_the_mean():
    vectors = crowded(2 * ROWS, DIM)
    train, unseen = vectors[:ROWS], vectors[ROWS:]
    coarse = train_coarse_lists(create_index(KEY, DIM, "ip"), train, 4.0)
    assert coarse.largest_share_before > 6  # faiss's k-means leaves the crowd in one list
    assert coarse.split_lists >= 1 and coarse.lists > 64
    assert coarse.largest_share_after < 4
    flat = faiss.IndexFlatIP(DIM)
    flat.add(coarse.centroids)
    sizes = np.bincount(flat.search(unseen, 1)[1][:, 0], minlength=coarse.lists)
    assert sizes.max() < 4.5 * len(unseen) / coarse.lists  # holds on vectors it never saw


def test_keys_with_a_pre_transform_or_graph_quantizer_keep_faiss_lists():
    assert splits_lists("IVF2048,PQ256x4fs,Refine(SQfp16)") and splits_lists("IVF64,Flat")
    assert not splits_lists("OPQ256_768,IVF16384_HNSW32,PQ256x8")
    assert not splits_lists("IVF1024_HNSW32,Flat") and not splits_lists("HNSW32")


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coarse")
    shards, vectors = write_shards(
        folder / "emb", {"p0": ROWS // 2, "p1": ROWS // 2}, DIM, vectors=crowded(ROWS, DIM)
    )
    built = {}
    for name, split_over in (("split", 4.0), ("faiss", 0.0)):
        settings = IndexSettings(
            **{**FAST.to_dict(), "index_key": KEY, "split_lists_over": split_over}
        )
        built[name] = build_index(shards, folder / name, settings), folder / name
    return built, vectors


def test_a_build_over_a_crowd_splits_its_lists_and_meets_the_recall_target(builds):
    built, vectors = builds
    (infos, folder), (plain, plain_folder) = built["split"], built["faiss"]
    coarse = infos["coarse_lists"]
    assert coarse["trained_lists"] == 64 and coarse["split_lists"] >= 1
    assert lists_of(infos["index_key"]) == coarse["lists"] > 64
    index = open_index(folder)
    sizes, plain_sizes = list_sizes(index), list_sizes(open_index(plain_folder))
    assert len(sizes) == coarse["lists"] and sizes.sum() == ROWS
    assert sizes.max() / sizes.mean() < 4.5 < 6 < plain_sizes.max() / plain_sizes.mean()
    assert plain["coarse_lists"] is None and plain["index_key"] == KEY
    assert infos["recall@10"] >= 0.95 and plain["recall@10"] >= 0.95
    _, found = index.search(vectors[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]
