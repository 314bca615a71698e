"""The calibration's neighbourhoods: around each anchor, the sample is as crowded as the data."""

from __future__ import annotations

import faiss
import numpy as np
from index_samples import write_shards

from clip_assets.index.neighbourhoods import anchor_queries, neighbourhood_vectors

DIM = 32


def test_an_anchors_top_k_over_its_neighbourhood_is_its_top_k_over_the_data(tmp_path):
    shards, vectors = write_shards(tmp_path, {"a": 3_000, "b": 2_000}, DIM)
    excluded = np.arange(0, 100)  # the queries themselves: never calibration vectors
    anchors = np.concatenate([vectors[:5], np.roll(vectors[200:205], 1, axis=1)])
    near = neighbourhood_vectors(
        shards, DIM, anchors, 50, excluded, faiss.METRIC_INNER_PRODUCT, batch_rows=700
    )

    assert len(near) <= len(anchors) * 51 and len(np.unique(near, axis=0)) == len(near)
    assert not (near[:, None, :] == vectors[excluded][None, :, :]).all(axis=2).any()
    kept = np.setdiff1d(np.arange(len(vectors)), excluded)
    over_data = faiss.IndexFlatIP(DIM)
    over_data.add(vectors[kept])
    over_sample = faiss.IndexFlatIP(DIM)
    over_sample.add(near)
    for anchor in anchors:
        data_scores = over_data.search(anchor[None], 10)[0]
        sample_scores = over_sample.search(anchor[None], 10)[0]
        np.testing.assert_allclose(sample_scores, data_scores, rtol=1e-5)


def test_anchors_are_half_image_half_text_unless_one_kind_runs_short():
    image, text = np.zeros((40, DIM)), np.ones((30, DIM))
    assert {k: len(v) for k, v in anchor_queries(image, text, 20).items()} == {
        "image": 10,
        "text": 10,
    }
    assert {k: len(v) for k, v in anchor_queries(image, text[:3], 20).items()} == {
        "image": 17,
        "text": 3,
    }
    assert {k: len(v) for k, v in anchor_queries(image[:2], text, 20).items()} == {
        "image": 2,
        "text": 18,
    }
    assert set(anchor_queries(image, text[:0], 8)) == {"image"}
