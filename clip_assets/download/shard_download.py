"""Public entry points of the images stage: a metadata slice in, an images table out.

``download_shard_to_file`` reads a table with METADATA_SCHEMA columns (only ``uid``, ``url``,
``sha256`` and, when blurring faces, ``face_bboxes`` are used) and writes an IMAGES_SCHEMA
parquet file with exactly one row per input row, in input order, whatever the URLs, servers or
bytes do (see ``reasons`` for the ``reason`` vocabulary). ``retry_failed_to_file`` re-downloads
only the transient failures of such a file. Both write atomically (``writer.atomic_parquet``)
and hold a bounded number of rows, however long the partition: rows finish out of order, so
finished rows wait in memory until every earlier row has finished, and no row starts more than
``WINDOW_GROUPS * row_group_rows`` rows past the first unfinished one. ``download_shard`` and
``retry_failed`` do the same but return the table (for small shards, tests and notebooks).
Small shards run in this process; larger ones are spread over worker processes (``workers``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.pipeline import Emit, Gate, Row, download_jobs, iter_jobs
from clip_assets.download.workers import download_in_workers
from clip_assets.download.writer import (
    Flush,
    OrderedRows,
    RetryMerge,
    atomic_parquet,
    transient_failures,
)
from clip_assets.schemas import IMAGES_SCHEMA

ROW_GROUP_ROWS = 1024
#: The reorder window in row groups. Finished rows held: up to 5 row groups (~230 MB of
#: 256 px images at the defaults). A row slower than 4 groups' worth of downloads (a dead host
#: timing out, then retried) pauses new starts until it ends: a wider window trades memory
#: for fewer such pauses.
WINDOW_GROUPS = 4


@dataclass(frozen=True)
class DownloadProgress:
    """Where a running shard stands; passed to ``on_progress`` every ``progress_interval_s``
    and once at the end."""

    done: int
    total: int
    ok: int
    bytes: int
    elapsed_s: float

    @property
    def images_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


OnProgress = Callable[[DownloadProgress], None]


def download_shard_to_file(
    metadata: pa.Table,
    settings: DownloadSettings,
    path: Path,
    *,
    on_progress: OnProgress | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> None:
    """Downloads every row of ``metadata`` into the IMAGES_SCHEMA parquet file ``path``.

    One row per input row in input order, exactly the rows ``download_shard`` returns, as zstd
    row groups of ``row_group_rows``; ``path`` appears only once complete (its folder must
    exist). Memory is bounded by ``row_group_rows`` (see ``WINDOW_GROUPS``), not by the
    partition size.
    """
    with atomic_parquet(path, settings.file_metadata()) as write:
        _download(metadata, settings, write, on_progress, row_group_rows)


def download_shard(
    metadata: pa.Table,
    settings: DownloadSettings,
    *,
    on_progress: OnProgress | None = None,
) -> pa.Table:
    """Downloads every row of ``metadata``; returns IMAGES_SCHEMA rows in input order."""
    tables: list[pa.Table] = []
    _download(metadata, settings, tables.append, on_progress, ROW_GROUP_ROWS)
    return pa.concat_tables(tables) if tables else IMAGES_SCHEMA.empty_table()


def retry_failed_to_file(
    previous: Path,
    metadata: pa.Table,
    settings: DownloadSettings,
    path: Path,
    *,
    on_progress: OnProgress | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> None:
    """``retry_failed`` from the images file ``previous`` to the file ``path`` (may be the
    same): kept rows are copied a row group at a time, retried rows merged in, and ``path``
    is replaced atomically. With nothing to retry and ``path == previous`` nothing is written.
    """
    with pq.ParquetFile(previous) as source:
        indices = transient_failures(source.read(columns=["uid", "status", "reason"]), metadata)
        if not indices and Path(path).resolve() == Path(previous).resolve():
            return
        batches = (pa.Table.from_batches([b]) for b in source.iter_batches(row_group_rows))
        with atomic_parquet(path, settings.file_metadata()) as write:
            _retry(batches, indices, metadata, settings, write, on_progress, row_group_rows)


def retry_failed(
    previous: pa.Table,
    metadata: pa.Table,
    settings: DownloadSettings,
    *,
    on_progress: OnProgress | None = None,
) -> pa.Table:
    """Re-downloads the rows of ``previous`` whose reason is transient and merges them in.

    ``previous`` must be the images table made from ``metadata`` (same uids, same order);
    other rows come back byte-identical. A retried row's ``attempts`` adds to its old count.
    """
    indices = transient_failures(previous, metadata)
    if not indices:
        return previous
    tables: list[pa.Table] = []
    _retry([previous], indices, metadata, settings, tables.append, on_progress, ROW_GROUP_ROWS)
    return pa.concat_tables(tables)


def _retry(
    previous: Iterable[pa.Table],
    indices: list[int],
    metadata: pa.Table,
    settings: DownloadSettings,
    flush: Flush,
    on_progress: OnProgress | None,
    row_group_rows: int,
) -> None:
    merge = RetryMerge(previous, indices, flush)
    if indices:
        retried = metadata.take(pa.array(indices, pa.int64()))
        _download(retried, settings, merge.add, on_progress, row_group_rows)
    merge.finish()


def _download(
    metadata: pa.Table,
    settings: DownloadSettings,
    flush: Flush,
    on_progress: OnProgress | None,
    row_group_rows: int,
) -> None:
    """Downloads every row of ``metadata``, handing in-order tables to ``flush``."""
    ordered = OrderedRows(metadata, row_group_rows, flush)
    tracker = _Tracker(metadata.num_rows, on_progress)

    def emit(index: int, row: Row) -> None:
        ordered.add(index, row)
        tracker.add(row)

    def limit() -> int:
        return ordered.next + WINDOW_GROUPS * row_group_rows

    processes = _processes(metadata.num_rows, settings)
    if processes > 1:
        download_in_workers(metadata, settings, emit, processes, limit)
    elif metadata.num_rows:
        _in_this_process(metadata, settings, emit, limit)
    ordered.finish()
    tracker.finish()


def _processes(n_jobs: int, settings: DownloadSettings) -> int:
    """Worker processes worth starting: none for shards too small to repay a spawn."""
    wanted = settings.workers if settings.workers is not None else (os.cpu_count() or 1)
    return max(0, min(wanted, n_jobs // max(1, settings.min_rows_per_worker)))


def _in_this_process(
    metadata: pa.Table, settings: DownloadSettings, emit: Emit, limit: Callable[[], int]
) -> None:
    gate = Gate(limit())

    def emit_and_open(index: int, row: Row) -> None:
        emit(index, row)
        gate.open_to(limit())

    def run() -> None:
        download_jobs(
            iter_jobs(metadata, settings.blur_faces),
            settings,
            emit_and_open,
            concurrency=settings.concurrency,
            per_host=settings.per_host_concurrency,
            decode_threads=min(2, os.cpu_count() or 1),
            gate=gate,
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from inside an event loop (a notebook, an async caller): use a loop of our own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


class _Tracker:
    """Counts finished rows and calls ``on_progress`` at most every few seconds."""

    interval_s = 5.0

    def __init__(self, total: int, on_progress: OnProgress | None) -> None:
        self._total, self._on_progress = total, on_progress
        self._done = self._ok = self._bytes = 0
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, row: Row) -> None:
        with self._lock:
            self._done += 1
            self._ok += row["status"] == "ok"
            self._bytes += row["bytes"] or 0
            due = time.monotonic() - self._last >= self.interval_s
        if due:
            self._report()

    def finish(self) -> None:
        self._report()

    def _report(self) -> None:
        self._last = time.monotonic()
        if self._on_progress is not None:
            elapsed = self._last - self._start
            self._on_progress(
                DownloadProgress(self._done, self._total, self._ok, self._bytes, elapsed)
            )


__all__ = [
    "DownloadProgress",
    "download_shard",
    "download_shard_to_file",
    "retry_failed",
    "retry_failed_to_file",
]
