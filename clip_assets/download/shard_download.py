"""Public entry points of the images stage: a metadata slice in, an images file out.

``download_shard_to_file`` reads a table with METADATA_SCHEMA columns (only ``uid``, ``url``,
``sha256`` and, when blurring faces, ``face_bboxes`` are used) and writes an IMAGES_SCHEMA
parquet file with exactly one row per input row, in input order, whatever the URLs, servers or
bytes do (see ``reasons`` for the ``reason`` vocabulary); given the partition's ``previous``
images file it never turns a stored ``ok`` row into a failure. ``retry_failed_to_file``
re-downloads only the transient failures of such a file. Both write atomically
(``writer.atomic_parquet``, whose footer keeps the counts and the download time; a retry adds
its time to the earlier pass's), return the partition's ``NetworkStats`` (for ``summary``) and hold
a bounded number of rows, however long the partition: rows finish out of order, so finished
rows wait in memory until every earlier row has finished, and no row starts more than
``WINDOW_GROUPS * row_group_rows`` rows past the first unfinished one. Small shards run in
this process; larger ones are spread over worker processes (``workers``).

A time-out is not retried in place: the first pass ends such a row at its first time-out
(other transient failures are retried at once, as ``fetch`` does), and a second pass gives the
rows that timed out their remaining retries together, merged into the file. Retried in place,
a silent host's row (a time-out, a backoff, the same again) holds every later row for half a
minute, and once the reorder window is full new starts pause meanwhile: with 0.3% of rows
timing out, a partition 8 windows long went at half the speed (docs/scaling.md). A host whose
breaker opened, or whose robots.txt was unreachable, is decided for the run: its rows wait for
``retry_failed`` as before.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.pipeline import Emit, Gate, Row, download_jobs, iter_jobs
from clip_assets.download.reasons import DEFERRED_REASONS, TIMEOUT
from clip_assets.download.summary import stored_summary
from clip_assets.download.workers import download_in_workers
from clip_assets.download.writer import (
    Flush,
    KeepStored,
    OrderedRows,
    RetryMerge,
    atomic_parquet,
    transient_failures,
)
from clip_assets.streamed_parquet import open_streamed

ROW_GROUP_ROWS = 1024
#: The reorder window in row groups. Finished rows held: up to 5 row groups (~230 MB of
#: 256 px images at the defaults). A row slower than 4 groups' worth of downloads (a silent
#: host's time-out) pauses new starts until it ends: a wider window trades memory for fewer
#: such pauses, and retries wait for the second pass so that no row is slower than one try.
WINDOW_GROUPS = 4


@dataclass(frozen=True)
class DownloadProgress:
    """Where a running shard stands; passed to ``on_progress`` every ``_Tracker.interval_s``
    and once at the end. ``reasons`` counts the finished rows' reasons (every row not ok),
    so a caller can judge a partition while it runs (``health``)."""

    done: int
    total: int
    ok: int
    bytes: int
    elapsed_s: float
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0


OnProgress = Callable[[DownloadProgress], None]


def download_shard_to_file(
    metadata: pa.Table,
    settings: DownloadSettings,
    path: Path,
    *,
    previous: Path | None = None,
    on_progress: OnProgress | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> NetworkStats:
    """Downloads every row of ``metadata`` into the IMAGES_SCHEMA parquet file ``path``.

    One row per input row in input order, as zstd row groups of ``row_group_rows``; ``path``
    appears only once complete (its folder must exist, and it may be ``previous``). Memory is
    bounded by ``row_group_rows`` (see ``WINDOW_GROUPS``), not by the partition size. With
    ``previous`` (an earlier images file of this partition), a row that fails now but was ``ok``
    there (same ``uid``) keeps its stored row as it was: a re-download while hosts are down
    loses nothing. A row that now opts out takes the opt-out: the site's current wish wins.
    """
    recorded = settings.file_metadata()
    if not settings.retries or not metadata.num_rows:
        return _first_pass(
            metadata, settings, recorded, path, previous, on_progress, row_group_rows, True
        )
    first = path.with_name(f".{path.name}.first-pass")
    try:
        stats = _first_pass(
            metadata, settings, recorded, first, previous, on_progress, row_group_rows, False
        )
        with open_streamed(first) as source:
            indices = _timed_out(source.read(columns=["url", "reason"]))
            if indices:
                later = replace(settings, retries=settings.retries - 1)
                batches = (pa.Table.from_batches([b]) for b in source.iter_batches(row_group_rows))
                with atomic_parquet(path, recorded) as write:
                    return stats + _retry(
                        batches, indices, metadata, later, write, None, row_group_rows
                    )
        os.replace(first, path)
        return stats
    finally:
        first.unlink(missing_ok=True)


def _first_pass(
    metadata: pa.Table,
    settings: DownloadSettings,
    recorded: dict[bytes, bytes],
    path: Path,
    previous: Path | None,
    on_progress: OnProgress | None,
    row_group_rows: int,
    retry_timeouts: bool,
) -> NetworkStats:
    with atomic_parquet(path, recorded) as write:
        if previous is None:
            return _download(metadata, settings, write, on_progress, row_group_rows, retry_timeouts)
        with KeepStored(previous, write) as keep:
            return _download(
                metadata, settings, keep.flush, on_progress, row_group_rows, retry_timeouts
            )


def _timed_out(first: pa.Table) -> list[int]:
    """Rows whose one try timed out, except on a host whose breaker opened or whose
    robots.txt was unreachable: that host is decided for this run."""
    found, urls = first["reason"].to_pylist(), first["url"].to_pylist()
    closed = {urlsplit(urls[i]).hostname for i, r in enumerate(found) if r in DEFERRED_REASONS}
    return [
        i for i, r in enumerate(found) if r == TIMEOUT and urlsplit(urls[i]).hostname not in closed
    ]


def retry_failed_to_file(
    previous: Path,
    metadata: pa.Table,
    settings: DownloadSettings,
    path: Path,
    *,
    on_progress: OnProgress | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> NetworkStats:
    """Re-downloads the rows of the images file ``previous`` whose reason is transient and
    writes it, with them merged in, to ``path`` (may be the same file).

    ``previous`` must be the images file made from ``metadata`` (same uids, same order); kept
    rows are copied a row group at a time and come back byte-identical; a retried row's
    ``attempts`` adds to its old count; ``path`` is replaced atomically. With nothing to retry
    and ``path == previous`` nothing is written.
    """
    with open_streamed(previous) as source:
        indices = transient_failures(source.read(columns=["uid", "status", "reason"]), metadata)
        if not indices and Path(path).resolve() == Path(previous).resolve():
            return NetworkStats()
        batches = (pa.Table.from_batches([b]) for b in source.iter_batches(row_group_rows))
        earlier = (stored_summary(source.metadata.metadata) or {}).get("elapsed_s", 0.0)
        with atomic_parquet(path, settings.file_metadata(), earlier_s=earlier) as write:
            return _retry(batches, indices, metadata, settings, write, on_progress, row_group_rows)


def _retry(
    previous: Iterable[pa.Table],
    indices: list[int],
    metadata: pa.Table,
    settings: DownloadSettings,
    flush: Flush,
    on_progress: OnProgress | None,
    row_group_rows: int,
) -> NetworkStats:
    merge = RetryMerge(previous, indices, flush)
    stats = NetworkStats()
    if indices:
        retried = metadata.take(pa.array(indices, pa.int64()))
        stats = _download(retried, settings, merge.add, on_progress, row_group_rows)
    merge.finish()
    return stats


def _download(
    metadata: pa.Table,
    settings: DownloadSettings,
    flush: Flush,
    on_progress: OnProgress | None,
    row_group_rows: int,
    retry_timeouts: bool = True,
) -> NetworkStats:
    """Downloads every row of ``metadata``, handing in-order tables to ``flush``."""
    ordered = OrderedRows(metadata, row_group_rows, flush)
    tracker = _Tracker(metadata.num_rows, on_progress)

    def emit(index: int, row: Row) -> None:
        ordered.add(index, row)
        tracker.add(row)

    def limit() -> int:
        return ordered.next + WINDOW_GROUPS * row_group_rows

    processes = _processes(metadata.num_rows, settings)
    stats = NetworkStats()
    if processes > 1:
        stats = download_in_workers(metadata, settings, emit, processes, limit, retry_timeouts)
    elif metadata.num_rows:
        stats = _in_this_process(metadata, settings, emit, limit, retry_timeouts)
    ordered.finish()
    tracker.finish()
    return stats


def _processes(n_jobs: int, settings: DownloadSettings) -> int:
    """Worker processes worth starting: none for shards too small to repay a spawn."""
    wanted = settings.workers if settings.workers is not None else (os.cpu_count() or 1)
    return max(0, min(wanted, n_jobs // max(1, settings.min_rows_per_worker)))


def _in_this_process(
    metadata: pa.Table,
    settings: DownloadSettings,
    emit: Emit,
    limit: Callable[[], int],
    retry_timeouts: bool,
) -> NetworkStats:
    gate = Gate(limit())

    def emit_and_open(index: int, row: Row) -> None:
        emit(index, row)
        gate.open_to(limit())

    def run() -> NetworkStats:
        return download_jobs(
            iter_jobs(metadata, settings.blur_faces),
            settings,
            emit_and_open,
            concurrency=settings.concurrency,
            per_host=settings.per_host_concurrency,
            decode_threads=min(2, os.cpu_count() or 1),
            gate=gate,
            retry_timeouts=retry_timeouts,
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from inside an event loop (a notebook, an async caller): use a loop of our own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


class _Tracker:
    """Counts finished rows and calls ``on_progress`` at most every few seconds."""

    interval_s = 5.0

    def __init__(self, total: int, on_progress: OnProgress | None) -> None:
        self._total, self._on_progress = total, on_progress
        self._done = self._ok = self._bytes = 0
        self._reasons: Counter[str] = Counter()
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, row: Row) -> None:
        with self._lock:
            self._done += 1
            self._ok += row["status"] == "ok"
            self._bytes += row["bytes"] or 0
            if row["reason"] is not None:
                self._reasons[row["reason"]] += 1
            due = time.monotonic() - self._last >= self.interval_s
        if due:
            self._report()

    def finish(self) -> None:
        self._report()

    def _report(self) -> None:
        self._last = time.monotonic()
        if self._on_progress is not None:
            elapsed = self._last - self._start
            with self._lock:
                counts = (self._done, self._total, self._ok, self._bytes)
                reasons = dict(self._reasons)
            self._on_progress(DownloadProgress(*counts, elapsed, reasons))


__all__ = ["DownloadProgress", "download_shard_to_file", "retry_failed_to_file"]
