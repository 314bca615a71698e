"""CLIP-like synthetic embeddings, written as float16 embeddings shards one shard at a time.

Real CLIP image embeddings are not uniform on the sphere: they share a common direction (random
pairs have cosine ~0.35-0.5), group into concepts and finer sub-concepts, and locally vary in a
few tens of directions (a local intrinsic dimension around 20-30). Caption embeddings sit apart
(the modality gap): a text query's best images have cosine ~0.3-0.5, and the query lies off the
image clusters. The model here draws:

- image: ``mean + concept + sub-concept offset + local (32-d, decaying spectrum) + noise``,
  renormalised; concepts have Zipf-like frequencies;
- text: the same concept / sub-concept / local structure around a different mean direction
  (0.35 of the image mean), weaker local detail and more noise.

Every shard is drawn from its own seed, so a shard's vectors do not depend on the other shards
or on how many there are, and memory holds one shard at a time. ``describe_neighbours`` reports
what the data looks like (cosine of the 1st/10th neighbour, of random pairs, and the
Levina-Bickel estimate of the local intrinsic dimension) from exact neighbours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.index import EmbeddingShard
from clip_assets.schemas import embeddings_schema


@dataclass(frozen=True)
class Style:
    """Pre-normalisation weights of one modality: mean direction, local detail, noise."""

    mean: float
    local: float
    noise: float


IMAGE = Style(mean=1.0, local=0.6, noise=0.5)
TEXT = Style(mean=1.2, local=0.4, noise=1.6)
TEXT_MEAN_SHARE = 0.35  # cosine between the text mean direction and the image one


class ClipLikeSpace:
    """The fixed part of the mixture: mean directions, concepts, sub-concepts, local bases."""

    def __init__(
        self,
        dim: int = 512,
        *,
        concepts: int = 1_000,
        sub_concepts: int = 16,
        local_dim: int = 32,
        sub_spread: float = 0.4,
        sub_noise: float = 0.25,
        zipf: float = 0.7,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng([seed, 0])
        self.dim, self.local_dim = dim, local_dim
        self.image_mean = _unit(rng.normal(size=dim))
        other = rng.normal(size=dim)
        other = _unit(other - (other @ self.image_mean) * self.image_mean)
        share = TEXT_MEAN_SHARE
        self.text_mean = _unit(share * self.image_mean + np.sqrt(1 - share**2) * other)
        centres = rng.normal(size=(concepts, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        self.bases = (rng.normal(size=(concepts, dim, local_dim)) / np.sqrt(dim)).astype(np.float32)
        spectrum = np.arange(1, local_dim + 1, dtype=np.float32) ** -0.25
        self.spectrum = spectrum / np.sqrt((spectrum**2).sum())
        offsets = rng.normal(size=(concepts, sub_concepts, local_dim)).astype(np.float32)
        structured = np.einsum("cdr,csr->csd", self.bases, offsets * self.spectrum)
        isotropic = rng.normal(size=(concepts, sub_concepts, dim)).astype(np.float32)
        self.sub_centres = (
            centres[:, None, :] + sub_spread * structured + sub_noise * isotropic / np.sqrt(dim)
        )
        weights = np.arange(1, concepts + 1, dtype=np.float64) ** -zipf
        self.weights = weights / weights.sum()

    def draw(self, n: int, rng: np.random.Generator, style: Style, mean: np.ndarray) -> np.ndarray:
        """``n`` unit vectors of one modality."""
        concepts, subs = self.sub_centres.shape[:2]
        concept = rng.choice(concepts, n, p=self.weights)
        sub = rng.integers(0, subs, n)
        local = rng.normal(size=(n, self.local_dim)).astype(np.float32) * self.spectrum
        vectors = np.empty((n, self.dim), np.float32)
        order = np.argsort(concept, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(concept[order])) + 1):
            vectors[group] = local[group] @ self.bases[concept[group[0]]].T
        vectors *= style.local
        vectors += self.sub_centres[concept, sub] + style.mean * mean
        vectors += (
            style.noise * rng.normal(size=(n, self.dim)).astype(np.float32) / np.sqrt(self.dim)
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def images(self, n: int, seed: tuple[int, ...]) -> np.ndarray:
        return self.draw(n, np.random.default_rng(seed), IMAGE, self.image_mean)

    def texts(self, n: int, seed: tuple[int, ...]) -> np.ndarray:
        return self.draw(n, np.random.default_rng(seed), TEXT, self.text_mean)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def shard_table(vectors: np.ndarray, first_row: int) -> pa.Table:
    """An embeddings-schema table of float16 vectors (as the embeddings asset may store them)."""
    rows = range(first_row, first_row + len(vectors))
    flat = pa.array(vectors.astype(np.float16).ravel())
    return pa.table(
        {
            "uid": [f"{row:032x}" for row in rows],
            "url": [f"http://127.0.0.1/{row}.jpg" for row in rows],
            "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        },
        schema=embeddings_schema(vectors.shape[1], pa.float16()),
    )


def write_shards(
    space: ClipLikeSpace, n: int, shard_rows: int, folder: Path, seed: int
) -> Iterator[EmbeddingShard]:
    """Write ``n`` image vectors as ``part-NNNNN.parquet`` shards (skipping complete ones already
    there) and yield each shard as it is ready."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, n, shard_rows)):
        rows = min(shard_rows, n - start)
        path = folder / f"part-{number:05d}.parquet"
        if not (path.exists() and pq.ParquetFile(path).metadata.num_rows == rows):
            tmp = path.with_suffix(".tmp")
            pq.write_table(shard_table(space.images(rows, (seed, 1, number)), start), tmp)
            tmp.replace(path)
        yield EmbeddingShard(path.stem, path)


def describe_neighbours(
    queries: np.ndarray, similarities: np.ndarray, random_pairs: np.ndarray
) -> dict[str, float]:
    """Cosine of the 1st and 10th exact neighbour, of random pairs, and the Levina-Bickel MLE of
    the local intrinsic dimension over the ``similarities.shape[1]`` neighbours (unit vectors:
    distance = sqrt(2 - 2 cos))."""
    distances = np.sqrt(np.maximum(2.0 - 2.0 * similarities.astype(np.float64), 1e-12))
    ratios = np.log(distances[:, :-1] / distances[:, -1:])
    lid = -1.0 / ratios.mean(axis=1)
    return {
        "queries": len(queries),
        "neighbours": similarities.shape[1],
        "cos_1st": float(similarities[:, 0].mean()),
        "cos_10th": float(similarities[:, 9].mean()),
        "cos_random": float(random_pairs.mean()),
        "lid_median": float(np.median(lid)),
        "lid_mean": float(lid.mean()),
    }
