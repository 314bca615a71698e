"""Memory bounded by a batch or a partition, never by the dataset: index build and id mapping."""

from __future__ import annotations

import tracemalloc

import pyarrow as pa
import pytest
from conftest import DIM, FAST
from index_samples import reader, write_shards

from clip_assets.index import IndexSettings, build_id_mapping, build_index
from clip_assets.index.index_keys import training_size

SHARDS, ROWS = 20, 2_000  # 40,000 vectors: 5.1 MB as float32


def test_the_training_sample_stops_growing_with_the_data():
    # autofaiss's own rule asks 1.6M vectors for its DataComp small pick, more with more RAM.
    key = "OPQ256_768,IVF16384_HNSW32,PQ256x8"
    cap = IndexSettings().max_training_vectors
    assert training_size(9_250_000, key, IndexSettings()) == cap
    assert training_size(128_000_000, key, IndexSettings()) == cap
    assert training_size(300_000, "IVF1024,PQ64x4fs,Refine(SQ8)", IndexSettings()) == 65_536


def _traced_build_peak(tmp_path, shards_count: int) -> tuple[int, int]:
    """Peak numpy/Python memory of a build over ``shards_count`` shards, and the data's bytes."""
    sizes = {f"p{i:02d}": ROWS for i in range(shards_count)}
    shards, vectors = write_shards(tmp_path / f"emb{shards_count}", sizes, DIM)
    settings = IndexSettings(**{**FAST.to_dict(), "index_key": "IVF16,Flat", "batch_rows": 1_000})
    tracemalloc.start()
    try:
        build_index(shards, tmp_path / f"index{shards_count}", settings)
        return tracemalloc.get_traced_memory()[1], vectors.nbytes
    finally:
        tracemalloc.stop()


def test_a_build_holds_its_samples_and_one_batch_not_the_vectors(tmp_path):
    # numpy reports its buffers to tracemalloc; faiss's own (the index) it does not see. Held:
    # 1,024 training and 200 query vectors, one 1,000-row batch, one shard's uids.
    small, _ = _traced_build_peak(tmp_path, 5)
    large, data_bytes = _traced_build_peak(tmp_path, SHARDS)
    assert large < 1.3 * small  # four times the data, about the same memory
    assert large < 0.3 * data_bytes


def test_the_id_mapping_holds_a_shard_and_a_chunk_not_the_dataset(tmp_path):
    sizes = {f"p{i:02d}": ROWS for i in range(SHARDS)}
    shards, _ = write_shards(tmp_path / "emb", sizes, DIM)
    index_dir = tmp_path / "index"
    build_index(shards, index_dir, IndexSettings(**{**FAST.to_dict(), "index_key": "Flat"}))

    embeddings_of = reader(shards)
    baseline = pa.total_allocated_bytes()
    held, rows = [], 0
    for chunk in build_id_mapping(index_dir, embeddings_of, chunk_rows=3_000):
        rows += chunk.num_rows
        held.append(pa.total_allocated_bytes() - baseline)
        del chunk
    assert rows == SHARDS * ROWS
    one_shard = embeddings_of("p00").nbytes
    # At any chunk: the chunk, the rest of at most two shards; never most of the 20 shards.
    assert max(held) < 5 * one_shard


def test_a_build_that_would_not_fit_the_memory_given_is_refused_before_reading(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"p0": 12_000}, DIM)
    tight = IndexSettings(**{**FAST.to_dict(), "current_memory_available": "1M"})
    with pytest.raises(ValueError, match="current_memory_available is 1M"):
        build_index(shards, tmp_path / "index", tight)
    assert not (tmp_path / "index" / "faiss").exists()
