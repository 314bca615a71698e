"""Spreading a shard over worker processes, each running its own event loop and decoder.

``download_in_workers`` reads a metadata table and settings, starts ``processes`` workers that each
take every ``processes``-th row, and calls ``emit(index, row)`` in this process for every row as
results stream back; it returns the workers' ``NetworkStats`` added up. It raises ``RuntimeError``
if a worker dies, so a partition never silently loses rows. Concurrency and the per-host limit are
divided evenly among the workers. No worker starts a row whose index is at or past ``limit()``:
after each batch of rows the current limit goes down every worker's stdin, which is what keeps the
caller's reorder buffer bounded.

Why an event loop per process rather than one loop feeding a decode pool: on 2 cores the HTTP
client's own CPU cost (~1 ms a request) is as large as decoding a draft-mode JPEG, so both
kinds of work must be spread over the cores, and raw bodies then never cross a process
boundary, only the small re-encoded images do.

Why ``python -m`` subprocesses rather than ``multiprocessing``: fork is unsafe in a threaded
caller (Dagster), and spawn re-imports the caller's ``__main__``, which breaks every script
without a ``__name__`` guard. A plain child process with pickles over its pipes has neither
problem. Workers' stderr is inherited, so their tracebacks show up in the caller's log.
"""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import IO, Any

import pyarrow as pa

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.pipeline import Emit, Gate, Row, download_jobs, iter_jobs

_FLUSH_ROWS = 32
_FLUSH_S = 0.2


def download_in_workers(
    metadata: pa.Table,
    settings: DownloadSettings,
    emit: Emit,
    processes: int,
    limit: Callable[[], int],
    retry_timeouts: bool = True,
) -> NetworkStats:
    """Downloads every row of ``metadata`` in ``processes`` worker processes; ``emit`` and
    ``limit`` run in this process; ``retry_timeouts`` as ``fetch.Fetcher`` takes it."""
    concurrency = math.ceil(settings.concurrency / processes)
    per_host = math.ceil(settings.per_host_concurrency / processes)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    # Only the columns jobs read travel, as Arrow: a few bytes a row, not a Python object each.
    wanted = [c for c in ("url", "sha256", "face_bboxes") if c in metadata.column_names]
    columns = metadata.select(wanted)
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    children = []
    stats = NetworkStats()
    sent = limit()
    try:
        for i in range(processes):
            child = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            children.append(child)
            assert child.stdin is not None and child.stdout is not None
            mine = columns.take(list(range(i, metadata.num_rows, processes)))
            start = (mine, i, processes, settings, concurrency, per_host, sent, retry_timeouts)
            _send(child.stdin, start)
            threading.Thread(target=_relay, args=(child.stdout, inbox), daemon=True).start()
        running = processes
        while running:
            kind, payload = inbox.get()
            if kind == "rows":
                for index, row in payload:
                    emit(index, row)
                if limit() > sent:
                    sent = limit()
                    for child in children:
                        _send(child.stdin, sent)
            elif kind == "done":
                worker, worker_stats = payload
                stats += worker_stats
                running -= 1
                _close(children[worker].stdin)  # ends the worker's limit reader: it may exit
            else:
                raise RuntimeError(f"download worker failed: {payload}")
    except BaseException:
        for child in children:
            child.kill()  # nobody will read their rows any more
        raise
    finally:
        for child in children:
            _close(child.stdin)
            child.wait()
    return stats


def _send(stream: IO[bytes] | None, message: object) -> None:
    """Pickles ``message`` down a worker's stdin; a dead worker is reported by its relay."""
    try:
        assert stream is not None
        pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
        stream.flush()
    except (BrokenPipeError, ValueError):  # ValueError: already closed
        pass


def _close(stream: IO[bytes] | None) -> None:
    try:
        if stream is not None:
            stream.close()
    except BrokenPipeError:
        pass


def _relay(stream: IO[bytes], inbox: queue.Queue) -> None:
    """Moves one worker's messages to ``inbox``; an early end of stream means it died."""
    with stream:
        while True:
            try:
                message = pickle.load(stream)
            except (EOFError, pickle.UnpicklingError, OSError):
                inbox.put(("error", "exited before sending all rows"))
                return
            inbox.put(message)
            if message[0] != "rows":
                return


def _serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """Worker body: reads its jobs, downloads them, streams rows back in small batches, and
    meanwhile raises its gate to each limit the parent sends."""
    batch: list[tuple[int, Row]] = []

    def send(message: tuple[str, Any]) -> None:
        pickle.dump(message, sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()

    def flush() -> None:
        if batch:
            send(("rows", batch.copy()))
            batch.clear()

    def emit(index: int, row: Row) -> None:
        # On the event loop's thread. A timer, not the next row, sends a partial batch: a
        # worker waiting at its gate emits nothing more, and the parent may be waiting for
        # exactly the rows it holds.
        if not batch:
            asyncio.get_running_loop().call_later(_FLUSH_S, flush)
        batch.append((index, row))
        if len(batch) >= _FLUSH_ROWS:
            flush()

    def follow_limits(gate: Gate) -> None:
        try:
            while True:
                gate.open_to(pickle.load(source))
        except (EOFError, pickle.UnpicklingError, OSError):
            return  # the parent is done with us or gone

    try:
        columns, start, step, settings, concurrency, per_host, limit, retry_timeouts = pickle.load(
            source
        )
        gate = Gate(limit)
        follower = threading.Thread(target=follow_limits, args=(gate,), daemon=True)
        follower.start()
        jobs = iter_jobs(columns, settings.blur_faces, start=start, step=step)
        stats = download_jobs(
            jobs,
            settings,
            emit,
            concurrency=concurrency,
            per_host=per_host,
            decode_threads=1,
            gate=gate,
            retry_timeouts=retry_timeouts,
        )
        send(("rows", batch))
        send(("done", (start, stats)))  # worker i starts at row i
        # Exiting while that thread blocks in a read of stdin aborts the interpreter: wait
        # for the parent to close it.
        follower.join()
    except BaseException:
        send(("error", traceback.format_exc()))
        raise


if __name__ == "__main__":
    # Messages own the real stdout; anything else printed goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, out)
