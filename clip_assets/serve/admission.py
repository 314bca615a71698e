"""Bounded concurrency for the expensive routes: a few requests run, a few more queue, the rest
are turned away at once.

Without a bound, a burst of image queries piles up decode buffers, model calls and threads
until the machine gives out, and every caller waits longer. ``Admission`` lets ``max_running``
requests run, queues ``max_waiting`` more in arrival order, and refuses the next one with
``ApiError(503)`` carrying ``Retry-After``. It lives on one event loop (the server's); counts
change only on that loop, so no lock is needed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clip_assets.serve.knn_request import ApiError


class Admission:
    """Turns for expensive requests: ``async with admission.turn(): ...``."""

    def __init__(self, max_running: int, max_waiting: int, retry_after_s: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests queued for a turn."""
        return len(self._waiters)

    def stats(self) -> dict[str, int]:
        """Running and waiting requests and their bounds (for ``/health``)."""
        return {
            "running": self.running,
            "waiting": self.waiting,
            "max_running": self.max_running,
            "max_waiting": self.max_waiting,
        }

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Run the block when a turn is free; raises ``ApiError(503)`` when the queue is full."""
        if self.running < self.max_running and not self._waiters:
            self.running += 1
        elif len(self._waiters) < self.max_waiting:
            await self._wait()
        else:
            raise ApiError(
                f"the service is busy ({self.running} queries running, {self.waiting} "
                f"waiting); retry in {self.retry_after_s} s",
                503,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        try:
            yield
        finally:
            self._hand_over()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by ``_hand_over``: the finishing request's turn is ours
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_over()  # handed a turn just as the caller went away: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _hand_over(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1
