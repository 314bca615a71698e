"""Turn a batch of queries into unit query vectors with the index's own CLIP model.

Reads a ``QueryBatch`` and a ``ClipSearcher`` (whose ``encoder`` is the model named by the
index's ``model.json``); returns ``EmbeddedQueries``: one float32 row per usable query, the
batch positions they stand for, and a ``QueryFailure`` for every other query. A bad query
(blank prompt, zero or non-finite embedding, unreachable URL, missing file, bytes that are no
image, a decompression bomb) fails alone, with a reason, and never stops the batch; an
embedding of the wrong width is a ``ValueError`` for the whole set, since every row of it will
be wrong. A batch's prompts go to the encoder as one list (it batches them itself), its
images ``IMAGE_CHUNK`` at a time; URLs are fetched concurrently through the search service's
guarded fetcher (address checks on every hop, size cap); every image is decoded once, under
the pixel limit, by the images stage's own guard (``download.decode_guard``), whose reasons
it reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.download import reasons
from clip_assets.download.decode_guard import ImageRefused, decode_checked
from clip_assets.retrieve.query_set import QueryBatch
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.search import ClipSearcher
from clip_assets.search.query_image import FetchError, fetch_image_async

EMPTY_QUERY = "empty_query"
MISSING_EMBEDDING = "missing_embedding"
NOT_FINITE = "not_finite"
ZERO_VECTOR = "zero_vector"
MISSING_FILE = "missing_file"
FETCH_ERROR = "fetch_error"
#: Image queries decoded and embedded together (decoded pictures are held until embedded).
IMAGE_CHUNK = 32


@dataclass(frozen=True)
class QueryFailure:
    """A query that got no vector: its id, a ``reason`` code and a human ``detail``."""

    query_id: str
    reason: str
    detail: str = ""


@dataclass
class EmbeddedQueries:
    """``vectors[j]`` is the query at batch position ``positions[j]``."""

    vectors: np.ndarray
    positions: np.ndarray
    failures: list[QueryFailure] = field(default_factory=list)


def embed_queries(
    searcher: ClipSearcher, batch: QueryBatch, settings: RetrievalSettings
) -> EmbeddedQueries:
    """The vectors of ``batch``'s usable queries, and why the others have none."""
    if batch.kind == "embedding":
        return _embeddings(batch, searcher.dim)
    if batch.kind == "text":
        usable = [i for i, text in enumerate(batch.values) if text is not None and text.strip()]
        failures = [
            QueryFailure(batch.ids[i], EMPTY_QUERY, "blank prompt")
            for i in sorted(set(range(len(batch))) - set(usable))
        ]
        vectors = searcher.encoder.encode_texts([batch.values[i] for i in usable])
        return EmbeddedQueries(_rows(vectors, searcher.dim), np.array(usable, np.int64), failures)
    return _images(searcher, batch, settings)


def _embeddings(batch: QueryBatch, dim: int) -> EmbeddedQueries:
    column: pa.Array = batch.values
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    widths = set(np.unique(lengths[lengths > 0]).tolist())
    if widths - {dim}:
        raise ValueError(f"query embeddings have {sorted(widths)} dimensions, the index {dim}")
    vectors = np.zeros((len(batch), dim), dtype=np.float32)
    present = np.flatnonzero(lengths == dim)
    if present.size:
        flat = pc.list_flatten(column.take(pa.array(present))).to_numpy(zero_copy_only=False)
        vectors[present] = flat.astype(np.float32).reshape(-1, dim)
    failures: list[QueryFailure] = []
    usable = np.zeros(len(batch), dtype=bool)
    usable[present] = True
    finite = np.isfinite(vectors).all(axis=1)
    nonzero = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0.0), axis=1) > 0
    for i in range(len(batch)):
        if not usable[i]:
            failures.append(QueryFailure(batch.ids[i], MISSING_EMBEDDING, "null or empty"))
        elif not finite[i]:
            failures.append(QueryFailure(batch.ids[i], NOT_FINITE, "NaN or infinity"))
        elif not nonzero[i]:
            failures.append(QueryFailure(batch.ids[i], ZERO_VECTOR, "all zeros"))
    keep = np.flatnonzero(usable & finite & nonzero)
    return EmbeddedQueries(vectors[keep], keep.astype(np.int64), failures)


def _images(
    searcher: ClipSearcher, batch: QueryBatch, settings: RetrievalSettings
) -> EmbeddedQueries:
    if batch.kind == "image_url":
        # A thread of its own, so this works inside a running event loop too (a notebook).
        with ThreadPoolExecutor(max_workers=1) as pool:
            loaded = pool.submit(asyncio.run, _fetch_all(batch.values, settings)).result()
    elif batch.kind == "image_file":
        loaded = [_read_file(batch.folder, p, settings.max_image_bytes) for p in batch.values]
    else:
        loaded = [_bytes_or_reason(b, settings.max_image_bytes) for b in batch.values]
    usable, vectors, failures = [], [], []
    # A chunk at a time: decoded pictures are large, and a batch may hold a thousand.
    for lo in range(0, len(loaded), IMAGE_CHUNK):
        pictures = []
        for i in range(lo, min(lo + IMAGE_CHUNK, len(loaded))):
            data, problem = loaded[i]
            if problem is None:
                try:
                    pictures.append(decode_checked(data, settings.max_image_pixels))
                    usable.append(i)
                    continue
                except ImageRefused as refused:
                    problem = (refused.reason, str(refused))
            failures.append(QueryFailure(batch.ids[i], *problem))
        if pictures:
            vectors.append(searcher.encoder.encode_pil(pictures))
    stacked = np.concatenate(vectors) if vectors else None
    return EmbeddedQueries(_rows(stacked, searcher.dim), np.array(usable, np.int64), failures)


Loaded = tuple[bytes | None, tuple[str, str] | None]


async def _fetch_all(urls: Sequence[str | None], settings: RetrievalSettings) -> list[Loaded]:
    gate = asyncio.Semaphore(settings.fetch_concurrency)

    async def one(url: str | None) -> Loaded:
        if not url or not url.strip():
            return None, (reasons.MISSING_URL, "no url")
        async with gate:
            try:
                data = await fetch_image_async(
                    url,
                    max_bytes=settings.max_image_bytes,
                    allow_private=settings.allow_private_urls,
                )
            except FetchError as error:
                return None, (FETCH_ERROR, str(error))
        return data, None

    return list(await asyncio.gather(*(one(url) for url in urls)))


def _read_file(folder: Path, name: str | None, max_bytes: int) -> Loaded:
    if not name:
        return None, (MISSING_FILE, "no path")
    path = folder / name
    if not path.is_file():
        return None, (MISSING_FILE, f"{name} is not a file")
    if path.stat().st_size > max_bytes:
        return None, (reasons.TOO_LARGE, f"{name} is over {max_bytes} bytes")
    return path.read_bytes(), None


def _bytes_or_reason(data: bytes | None, max_bytes: int) -> Loaded:
    if not data:
        return None, (reasons.NOT_AN_IMAGE, "no bytes")
    if len(data) > max_bytes:
        return None, (reasons.TOO_LARGE, f"over {max_bytes} bytes")
    return data, None


def _rows(vectors: np.ndarray | None, dim: int) -> np.ndarray:
    if vectors is None or len(vectors) == 0:
        return np.empty((0, dim), dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32)
