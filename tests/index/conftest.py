"""Shared builds: each index is built once per session and only read by the tests."""

from __future__ import annotations

import pytest
from index_samples import write_shards

from clip_assets.index import IndexSettings, build_index

DIM = 32
# One OpenMP thread: the test machine is shared, and contended OpenMP threads spin-wait (a 40 s
# OPQ training took 200 s with two threads under load).
FAST = IndexSettings(nb_cores=1, query_count=100, latency_queries=50)


@pytest.fixture(scope="session")
def ivf_build(tmp_path_factory):
    """An IVF index with an HNSW coarse quantizer over two shards of 1,000 rows."""
    folder = tmp_path_factory.mktemp("ivf")
    shards, vectors = write_shards(folder / "emb", {"p0": 1000, "p1": 1000}, DIM)
    settings = IndexSettings(**{**FAST.to_dict(), "index_key": "IVF32_HNSW8,Flat"})
    infos = build_index(shards, folder / "index", settings)
    return folder / "index", shards, vectors, infos
