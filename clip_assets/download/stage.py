"""Public entry points of the images stage: a metadata slice in, an images table out.

``download_shard`` reads a table with METADATA_SCHEMA columns (only ``uid``, ``url``,
``sha256`` and ``face_bboxes`` are used) and returns an IMAGES_SCHEMA table with exactly one
row per input row, in input order, whatever the URLs, servers or bytes do (see ``reasons`` for
the ``reason`` vocabulary). ``retry_failed`` re-downloads only the transient failures of such a
table. Neither writes anything: storing the table is the caller's job. Small shards run in this
process; larger ones are spread over worker processes (see ``workers``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.download.pipeline import Emit, Job, Row, run_jobs
from clip_assets.download.reasons import TRANSIENT_REASONS
from clip_assets.download.settings import DownloadSettings
from clip_assets.download.workers import run_parallel
from clip_assets.schemas import IMAGES_SCHEMA


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


def download_shard(
    metadata: pa.Table,
    settings: DownloadSettings,
    *,
    on_progress: OnProgress | None = None,
) -> pa.Table:
    """Downloads every row of ``metadata``; returns IMAGES_SCHEMA rows in input order."""
    jobs = _jobs(metadata)
    rows = _download(jobs, settings, on_progress)
    return _table(metadata, rows)


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
    if previous.num_rows != metadata.num_rows or not previous["uid"].equals(metadata["uid"]):
        raise ValueError("previous images table does not match metadata (uids or order differ)")
    failed = pc.equal(previous["status"], "failed")
    transient = pc.is_in(previous["reason"], pa.array(sorted(TRANSIENT_REASONS)))
    indices = pc.indices_nonzero(pc.and_kleene(failed, pc.fill_null(transient, False)))
    if len(indices) == 0:
        return previous
    retried = download_shard(metadata.take(indices), settings, on_progress=on_progress)
    old_attempts = pc.fill_null(previous["attempts"].take(indices), 0)
    new_attempts = pc.add(pc.fill_null(retried["attempts"], 0), old_attempts)
    retried = retried.set_column(
        retried.schema.get_field_index("attempts"), IMAGES_SCHEMA.field("attempts"), new_attempts
    )
    positions = {int(i): j for j, i in enumerate(indices.to_pylist())}
    take_from = [positions.get(i) for i in range(previous.num_rows)]
    merged = pa.concat_tables([previous.cast(IMAGES_SCHEMA), retried.cast(IMAGES_SCHEMA)])
    order = [previous.num_rows + j if j is not None else i for i, j in enumerate(take_from)]
    return merged.take(pa.array(order, pa.int64())).combine_chunks()


def _jobs(metadata: pa.Table) -> list[Job]:
    n = metadata.num_rows
    names = set(metadata.column_names)
    urls = metadata["url"].to_pylist() if "url" in names else [None] * n
    hashes = metadata["sha256"].to_pylist() if "sha256" in names else [None] * n
    faces = metadata["face_bboxes"].to_pylist() if "face_bboxes" in names else [None] * n
    return [Job(i, urls[i], hashes[i], faces[i]) for i in range(n)]


def _download(
    jobs: Sequence[Job], settings: DownloadSettings, on_progress: OnProgress | None
) -> list[Row | None]:
    rows: list[Row | None] = [None] * len(jobs)
    tracker = _Tracker(len(jobs), on_progress)

    def emit(index: int, row: Row) -> None:
        rows[index] = row
        tracker.add(row)

    processes = _processes(len(jobs), settings)
    if processes > 1:
        run_parallel(jobs, settings, emit, processes)
    elif jobs:
        _in_this_process(jobs, settings, emit)
    tracker.finish()
    return rows


def _processes(n_jobs: int, settings: DownloadSettings) -> int:
    """Worker processes worth starting: none for shards too small to repay a spawn."""
    wanted = settings.workers if settings.workers is not None else (os.cpu_count() or 1)
    return max(0, min(wanted, n_jobs // max(1, settings.min_rows_per_worker)))


def _in_this_process(jobs: Sequence[Job], settings: DownloadSettings, emit: Emit) -> None:
    def run() -> None:
        run_jobs(
            jobs,
            settings,
            emit,
            concurrency=settings.concurrency,
            per_host=settings.per_host_concurrency,
            decode_threads=min(2, os.cpu_count() or 1),
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


def _table(metadata: pa.Table, rows: Sequence[Row | None]) -> pa.Table:
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        raise RuntimeError(f"{len(missing)} rows got no result (first: {missing[0]})")
    urls = metadata["url"] if "url" in metadata.column_names else pa.nulls(len(rows))
    columns: dict[str, object] = {
        "uid": metadata["uid"].cast(pa.string()),
        "url": urls.cast(pa.string()),
    }
    for field in IMAGES_SCHEMA:
        if field.name not in columns:
            columns[field.name] = pa.array([row[field.name] for row in rows], field.type)
    return pa.table(columns, schema=IMAGES_SCHEMA)


__all__ = ["DownloadProgress", "download_shard", "retry_failed"]
