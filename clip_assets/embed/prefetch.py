"""Ordered read-ahead: run a function over items in worker threads while the caller consumes.

Guarantees: results come back in input order; at most ``workers`` items are in flight beyond
the one being consumed, so memory stays bounded; an error in a worker is raised to the caller
at that item's turn, and leaving early cancels work not yet started. Threads suffice because
decoding (libjpeg-turbo, nvjpeg) and resizing run in native code that releases the GIL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """Yield ``fn(item)`` for each item in order, computing up to ``workers`` items ahead."""
    if workers <= 0:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-prefetch")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
