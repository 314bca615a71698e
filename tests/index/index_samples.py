"""Real embeddings shards for the index tests: clustered unit vectors in parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.index import EmbeddingShard
from clip_assets.schemas import embeddings_schema


def clustered(n: int, dim: int, *, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """A mixture on the unit sphere: CLIP embeddings are clustered, uniform noise is not."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = centers[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim)) / np.sqrt(dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def crowded(
    n: int, dim: int, *, share: float = 0.1, spread: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Isotropic unit vectors with a crowd: ``share`` of them packed tightly round one direction
    (as duplicated and near-duplicated pictures pack real crawls), which k-means leaves in one
    oversized list."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim))
    centre = rng.normal(size=dim)
    crowd = int(n * share)
    vectors[:crowd] = centre / np.linalg.norm(centre) * np.sqrt(dim)
    vectors[:crowd] += spread * rng.normal(size=(crowd, dim))
    rng.shuffle(vectors)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def embeddings_table(vectors: np.ndarray, prefix: str, dtype: str = "float32") -> pa.Table:
    """An embeddings-schema table; uid/url name the shard and row so tests can tell rows apart."""
    rows = range(len(vectors))
    flat = pa.array(vectors.astype(dtype).ravel())
    return pa.table(
        {
            "uid": [f"{prefix}-{row}" for row in rows],
            "url": [f"http://127.0.0.1/{prefix}/{row}.jpg" for row in rows],
            "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        },
        schema=embeddings_schema(vectors.shape[1], flat.type),
    )


def write_shards(
    folder: Path,
    sizes: dict[str, int],
    dim: int,
    *,
    seed: int = 0,
    vectors: np.ndarray | None = None,
) -> tuple[list[EmbeddingShard], np.ndarray]:
    """One parquet file per ``name: rows`` (in the dict's order) of ``vectors`` (by default
    :func:`clustered` ones); returns the shards and all vectors in that order (row i = faiss
    id i)."""
    folder.mkdir(parents=True, exist_ok=True)
    if vectors is None:
        vectors = clustered(sum(sizes.values()), dim, seed=seed)
    shards, start = [], 0
    for name, rows in sizes.items():
        path = folder / f"{name}.parquet"
        pq.write_table(embeddings_table(vectors[start : start + rows], name), path)
        shards.append(EmbeddingShard(name, path))
        start += rows
    return shards, vectors


def reader(shards: list[EmbeddingShard]):
    """shard name -> embeddings table, as the id mapping and its check read them."""
    paths = {shard.name: shard.path for shard in shards}
    return lambda name: pq.read_table(paths[name])
