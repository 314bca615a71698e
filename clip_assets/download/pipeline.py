"""One event loop's share of a shard: fetch each job's URL, then check and re-encode its bytes.

``run_jobs`` reads ``Job``s and ``DownloadSettings`` and hands one images-table row (a dict
of IMAGES_SCHEMA columns except ``uid`` and ``url``) per job to ``emit``, in completion order,
from the calling thread. It never raises for a bad URL, server or image. Decoding runs in a
small thread pool so the loop keeps reading sockets meanwhile (Pillow releases the GIL while
decoding, resizing and encoding). At most ``2 * concurrency`` jobs are in flight, so memory
stays flat however long the shard.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from clip_assets.download import reasons
from clip_assets.download.fetch import Fetched, Fetcher
from clip_assets.download.resize import process
from clip_assets.download.settings import DownloadSettings

Row = dict[str, Any]
Emit = Callable[[int, Row], None]


@dataclass(frozen=True)
class Job:
    """One metadata row to download: its position, URL, expected SHA-256 and face boxes."""

    index: int
    url: str | None
    sha256: str | None = None
    face_bboxes: list[list[float]] | None = None


def run_jobs(
    jobs: Sequence[Job],
    settings: DownloadSettings,
    emit: Emit,
    *,
    concurrency: int,
    per_host: int,
    decode_threads: int,
) -> None:
    """Downloads ``jobs`` on a new event loop in this thread; ``emit(index, row)`` per job."""
    asyncio.run(_run(jobs, settings, emit, concurrency, per_host, decode_threads))


async def _run(
    jobs: Sequence[Job],
    settings: DownloadSettings,
    emit: Emit,
    concurrency: int,
    per_host: int,
    decode_threads: int,
) -> None:
    loop = asyncio.get_running_loop()
    # DNS lookups run on the default executor; its few threads would serialise them.
    loop.set_default_executor(ThreadPoolExecutor(min(concurrency, 64), thread_name_prefix="dns"))
    window = asyncio.Semaphore(2 * concurrency)
    with ThreadPoolExecutor(decode_threads, thread_name_prefix="decode") as decoder:
        async with Fetcher(settings, concurrency, per_host) as fetcher:

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

            tasks = set()
            for job in jobs:
                await window.acquire()
                task = asyncio.create_task(one(job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*tasks)


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
        return _row("opted_out", reasons.X_ROBOTS_TAG_PREFIX + fetched.opted_out, fetched)
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
