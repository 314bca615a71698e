"""Parquet files read a batch at a time, in memory bounded by the batch, not by the file.

pyarrow's ``ParquetFile`` pre-buffers by default (``pre_buffer=True``): one ``iter_batches``
over a file schedules every row group's column chunks into a read cache that lives as long as
the reader, so by its end a stream holds the whole file. Streaming a 50,000-row images
partition (1.7 GB of JPEG bytes) 4,096 rows at a time peaked at 2.4 GB that way and at 1.0 GB
without the cache (measured in the million-row rehearsal, docs/scaling.md). The cache's
coalesced reads pay off on high-latency object stores; every file streamed here is a local
path, read front to back.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def open_streamed(path: str | Path) -> pq.ParquetFile:
    """``path`` opened for ``iter_batches`` without pyarrow's whole-file read cache: what the
    stream has read is freed as it goes on. Use as a context manager to close it."""
    return pq.ParquetFile(path, pre_buffer=False)
