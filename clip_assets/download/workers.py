"""Spreading a shard over worker processes, each running its own event loop and decoder.

``run_parallel`` reads jobs and settings, starts ``processes`` workers that each take every
``processes``-th job, and calls ``emit(index, row)`` in this process for every job as results
stream back. It raises ``RuntimeError`` if a worker dies, so a partition never silently loses
rows. Concurrency and the per-host limit are divided evenly among the workers.

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

import math
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import IO, Any

from clip_assets.download.pipeline import Emit, Job, Row, run_jobs
from clip_assets.download.settings import DownloadSettings

_FLUSH_ROWS = 32
_FLUSH_S = 0.2


def run_parallel(
    jobs: Sequence[Job], settings: DownloadSettings, emit: Emit, processes: int
) -> None:
    """Downloads ``jobs`` in ``processes`` worker processes; ``emit`` runs in this process."""
    concurrency = math.ceil(settings.concurrency / processes)
    per_host = math.ceil(settings.per_host_concurrency / processes)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
    children = []
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
            pickle.dump((list(jobs[i::processes]), settings, concurrency, per_host), child.stdin)
            child.stdin.close()
            threading.Thread(target=_relay, args=(child.stdout, inbox), daemon=True).start()
        running = processes
        while running:
            kind, payload = inbox.get()
            if kind == "rows":
                for index, row in payload:
                    emit(index, row)
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(f"download worker failed: {payload}")
    except BaseException:
        for child in children:
            child.kill()  # nobody will read their rows any more
        raise
    finally:
        for child in children:
            child.wait()


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
    """Worker body: reads its jobs, downloads them, streams rows back in small batches."""
    batch: list[tuple[int, Row]] = []
    flushed = time.monotonic()

    def send(message: tuple[str, Any]) -> None:
        pickle.dump(message, sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()

    def emit(index: int, row: Row) -> None:
        nonlocal flushed
        batch.append((index, row))
        if len(batch) >= _FLUSH_ROWS or time.monotonic() - flushed > _FLUSH_S:
            send(("rows", batch.copy()))
            batch.clear()
            flushed = time.monotonic()

    try:
        jobs, settings, concurrency, per_host = pickle.load(source)
        run_jobs(jobs, settings, emit, concurrency=concurrency, per_host=per_host, decode_threads=1)
        send(("rows", batch))
        send(("done", None))
    except BaseException:
        send(("error", traceback.format_exc()))
        raise


if __name__ == "__main__":
    # Messages own the real stdout; anything else printed goes to stderr instead.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, out)
