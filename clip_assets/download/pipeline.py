"""One event loop's share of a shard: fetch each job's URL, then check and re-encode its bytes.

``download_jobs`` reads ``Job``s and ``DownloadSettings`` and hands one images-table row (a dict of
IMAGES_SCHEMA columns except ``uid`` and ``url``) per job to ``emit``, in completion order, from the
calling thread, and returns the loop's ``NetworkStats``. It never raises for a bad URL, server or
image. Decoding runs in a small thread pool so the loop keeps reading sockets meanwhile (Pillow
releases the GIL while decoding, resizing and encoding). At most ``2 * concurrency`` jobs are in
flight, and with a ``Gate`` no job starts before the caller has room for its row, so memory stays
flat however long the shard. ``iter_jobs`` builds ``Job``s from metadata columns a batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.fetch import Fetched, Fetcher
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.resize import process

Row = dict[str, Any]
Emit = Callable[[int, Row], None]


@dataclass(frozen=True, slots=True)
class Job:
    """One metadata row to download: its position, URL, expected SHA-256 and face boxes."""

    index: int
    url: str | None
    sha256: str | None = None
    face_bboxes: list[list[float]] | None = None


def iter_jobs(
    columns: pa.Table, blur_faces: bool, *, start: int = 0, step: int = 1
) -> Iterator[Job]:
    """Jobs for the rows of ``columns`` (``url``, ``sha256``, ``face_bboxes`` where present);
    row k gets index ``start + k * step``. Built a batch at a time so a 50,000-row shard never
    exists as Python objects at once; face boxes are read only when they will be used."""
    names = set(columns.column_names) - (set() if blur_faces else {"face_bboxes"})
    k = start
    for batch in columns.to_batches(max_chunksize=1024):
        n = batch.num_rows
        urls, hashes, faces = (
            batch.column(name).to_pylist() if name in names else [None] * n
            for name in ("url", "sha256", "face_bboxes")
        )
        for i in range(n):
            yield Job(k, urls[i], hashes[i], faces[i])
            k += step


class Gate:
    """Lets job ``index`` start only while ``index < limit``; ``open_to`` raises the limit
    from any thread. This is how the consumer of the rows bounds how far ahead of the first
    unfinished row the downloads may run, and so how many finished rows it must hold."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None

    def open_to(self, limit: int) -> None:
        if limit <= self._limit:
            return
        self._limit = limit  # set before reading _loop: ``wait`` sets _loop, then reads this
        if self._loop is not None:
            # RuntimeError: the loop has closed, so every job has started and nothing waits.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake)

    async def wait(self, index: int) -> None:
        self._loop = asyncio.get_running_loop()
        while index >= self._limit:
            self._waiter = self._loop.create_future()
            await self._waiter

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def download_jobs(
    jobs: Iterable[Job],
    settings: DownloadSettings,
    emit: Emit,
    *,
    concurrency: int,
    per_host: int,
    decode_threads: int,
    gate: Gate | None = None,
    retry_timeouts: bool = True,
) -> NetworkStats:
    """Downloads ``jobs`` on a new event loop in this thread; ``emit(index, row)`` per job;
    ``retry_timeouts`` as ``fetch.Fetcher`` takes it."""
    return asyncio.run(
        _run(jobs, settings, emit, concurrency, per_host, decode_threads, gate, retry_timeouts)
    )


async def _run(
    jobs: Iterable[Job],
    settings: DownloadSettings,
    emit: Emit,
    concurrency: int,
    per_host: int,
    decode_threads: int,
    gate: Gate | None,
    retry_timeouts: bool,
) -> NetworkStats:
    loop = asyncio.get_running_loop()
    if settings.resolver == "system":
        # getaddrinfo runs on the default executor; its few threads would serialise lookups.
        pool = ThreadPoolExecutor(min(concurrency, 64), thread_name_prefix="dns")
        loop.set_default_executor(pool)
    window = asyncio.Semaphore(2 * concurrency)
    with ThreadPoolExecutor(decode_threads, thread_name_prefix="decode") as decoder:
        async with Fetcher(settings, concurrency, per_host, retry_timeouts) as fetcher:

            async def one(job: Job) -> None:
                try:
                    fetched = await fetcher.fetch(job.url)
                    if fetched.body is None:
                        emit(job.index, _without_body(fetched))
                    else:
                        row = await loop.run_in_executor(
                            decoder, _with_body, job, fetched, settings
                        )
                        emit(job.index, row)
                finally:
                    window.release()

            # ``one`` fails only when ``emit`` does (say, the disk is full): stop the shard
            # then, rather than download the rest, or wait at a gate nobody will open.
            main, failed = asyncio.current_task(), []
            tasks: set[asyncio.Task] = set()

            def finished(task: asyncio.Task) -> None:
                tasks.discard(task)
                if not task.cancelled() and task.exception() and not failed and main:
                    failed.append(task.exception())
                    main.cancel()

            try:
                for job in jobs:
                    if gate is not None:
                        await gate.wait(job.index)
                    await window.acquire()
                    task = asyncio.create_task(one(job))
                    tasks.add(task)
                    task.add_done_callback(finished)
                while tasks:
                    await asyncio.gather(*tasks)
            except asyncio.CancelledError:
                if failed:
                    raise failed[0] from None
                raise
            return fetcher.stats


def _row(status: str, reason: str | None, fetched: Fetched, **columns: Any) -> Row:
    row: Row = {
        "status": status,
        "reason": reason,
        "http_status": fetched.http_status,
        "attempts": fetched.attempts,
        "sha256": None,
        "sha256_ok": None,
        "bytes": None,
        "width": None,
        "height": None,
        "original_width": None,
        "original_height": None,
        "image": None,
    }
    row.update(columns)
    return row


def _without_body(fetched: Fetched) -> Row:
    if fetched.opted_out:
        return _row("opted_out", fetched.opted_out, fetched)
    return _row("failed", fetched.reason, fetched)


def _with_body(job: Job, fetched: Fetched, settings: DownloadSettings) -> Row:
    """Hashes, decodes and re-encodes one body (runs on a decode thread)."""
    body = fetched.body or b""
    digest = hashlib.sha256(body).hexdigest()
    expected = (job.sha256 or "").strip().lower()
    checked = settings.hash_policy != "ignore" and bool(expected)
    sha_ok = digest == expected if checked else None
    seen = {"sha256": digest, "sha256_ok": sha_ok, "bytes": len(body)}
    if sha_ok is False and settings.hash_policy == "drop":
        return _row("hash_mismatch", reasons.SHA256_MISMATCH, fetched, **seen)
    out = process(body, settings, job.face_bboxes)
    sizes = {"original_width": out.original_width, "original_height": out.original_height}
    if out.reason:
        return _row("failed", out.reason, fetched, **seen, **sizes)
    kept = {"image": out.image, "width": out.width, "height": out.height}
    if sha_ok is False:
        return _row("hash_mismatch", reasons.SHA256_MISMATCH, fetched, **seen, **sizes, **kept)
    return _row("ok", None, fetched, **seen, **sizes, **kept)
