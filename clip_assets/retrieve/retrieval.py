"""A query set in, a parquet dataset of its nearest images out: the retrieval stage's entry point.

``retrieve_to_file`` reads a ``QuerySet`` and an open ``ClipSearcher`` (any layout: our storage,
a release, Fondant's, clip back's, a Hub repo) and writes a RETRIEVAL_SCHEMA parquet file: per
query, in query-set order, its kept hits in rank order (``RetrievalSettings`` says which).
Each batch of ``batch_size`` queries is embedded with the index's model, searched with one
faiss call, filtered, joined with the id mapping in one Arrow ``take`` and written as a row
group before the next batch is read, so memory holds one batch, not the query set or the
result. The file appears only when complete (``table_file``); its schema metadata records
the query set, the settings and the index size. Returns ``RetrievalSummary.to_dict()`` with
``elapsed_s`` and ``queries_per_s``. ``iter_retrieval`` yields the same tables (notebooks,
tests, other writers).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.retrieve.hit_selection import HitSelector, Selection
from clip_assets.retrieve.query_embedding import EmbeddedQueries, embed_queries
from clip_assets.retrieve.query_set import QueryBatch, QuerySet
from clip_assets.retrieve.retrieval_summary import RetrievalSummary
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.retrieve.table_file import table_file
from clip_assets.schemas import RETRIEVAL_SCHEMA
from clip_assets.search import ClipSearcher

LOG = logging.getLogger(__name__)

#: Schema metadata key of the JSON description of a retrieval file (query kind, settings).
METADATA_KEY = b"clip_assets.retrieval"

OnBatch = Callable[[dict[str, Any]], None]


def retrieve_to_file(
    searcher: ClipSearcher,
    queries: QuerySet,
    settings: RetrievalSettings,
    path: str | Path,
    *,
    on_batch: OnBatch | None = None,
) -> dict[str, Any]:
    """Writes the hits of every query of ``queries`` to ``path`` (its folder must exist).

    ``on_batch`` gets the running summary after each batch (progress for logs).
    """
    summary = RetrievalSummary()
    description = {
        "query_set": queries.describe(),
        "settings": settings.to_dict(),
        "index_vectors": len(searcher),
    }
    schema = RETRIEVAL_SCHEMA.with_metadata({METADATA_KEY: json.dumps(description)})
    start = time.perf_counter()
    with table_file(path, schema) as write:
        for table in iter_retrieval(searcher, queries, settings, summary):
            write(table.replace_schema_metadata(schema.metadata))
            if on_batch is not None:
                on_batch(summary.to_dict())
    return {**summary.to_dict(), **_rates(summary.queries, time.perf_counter() - start)}


def iter_retrieval(
    searcher: ClipSearcher,
    queries: QuerySet,
    settings: RetrievalSettings,
    summary: RetrievalSummary | None = None,
) -> Iterator[pa.Table]:
    """One RETRIEVAL_SCHEMA table per batch of queries, counted into ``summary``."""
    selector = HitSelector(searcher, settings)
    if summary is not None:
        summary.deduplication = selector.method
    k = min(settings.k, len(searcher))
    for batch in queries.batches(settings.batch_size):
        embedded = embed_queries(searcher, batch, settings)
        vectors = None
        if not len(embedded.positions) or not k:
            similarities = np.empty((len(embedded.positions), 0), np.float32)
            ids = np.empty((len(embedded.positions), 0), np.int64)
        elif selector.needs_vectors:
            similarities, ids, vectors = searcher.nearest_with_vectors(embedded.vectors, k)
        else:
            similarities, ids = searcher.nearest(embedded.vectors, k)
        selection = selector.select(similarities, ids, vectors)
        table = _hits_table(searcher, batch, embedded, selection)
        if summary is not None:
            summary.add(
                table, queries=len(batch), failures=embedded.failures, dropped=selection.dropped
            )
        for failure in embedded.failures:
            LOG.info("query %s failed: %s (%s)", failure.query_id, failure.reason, failure.detail)
        yield table


def read_description(path: str | Path) -> dict[str, Any]:
    """The description ``retrieve_to_file`` stored in a retrieval file's schema metadata."""
    metadata = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path} is not a retrieval file written by clip-assets")
    return json.loads(metadata[METADATA_KEY])


def _hits_table(
    searcher: ClipSearcher, batch: QueryBatch, embedded: EmbeddedQueries, selection: Selection
) -> pa.Table:
    positions = embedded.positions[selection.rows]  # batch position of each hit's query
    rows = searcher.mapping.take(selection.ids)
    ids = np.asarray(batch.ids, dtype=object)
    labels = np.asarray(batch.labels, dtype=object)
    return pa.table(
        {
            "query_id": pa.array(ids[positions].tolist(), pa.string()),
            "query": pa.array(labels[positions].tolist(), pa.string()),
            "rank": pa.array(selection.ranks, pa.int32()),
            "id": pa.array(selection.ids, pa.int64()),
            "uid": rows["uid"],
            "url": rows["url"],
            "caption": rows["caption"],
            "similarity": pa.array(selection.similarities, pa.float32()),
        },
        schema=RETRIEVAL_SCHEMA,
    )


def _rates(queries: int, elapsed_s: float) -> dict[str, float]:
    return {"elapsed_s": elapsed_s, "queries_per_s": queries / elapsed_s if elapsed_s > 0 else 0.0}
