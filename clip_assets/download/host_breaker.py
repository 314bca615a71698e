"""A breaker per host: stop sending requests to a host that keeps failing to connect.

``HostBreaker(limit, stats)`` serves one event loop. ``record(host, reason)`` after every
request to ``host``: a connect error or timeout (``reasons.HOST_FAILURES``) counts one more
failure in a row, any answer (``reason`` None or an HTTP status: the host is there) closes the
breaker and starts the count again, other failures leave it as it is. ``is_open(host)`` is True
from the ``limit``-th failure in a row until the next answer; the fetcher then fails that host's
rows at once as ``host_unreachable`` (transient, so ``retry_failed`` asks again later) without
a request. ``limit`` 0 never opens. ``proven(host)`` is True once the host has answered in this
loop: until then the fetcher sends it at most ``limit`` requests at a time, so a host that is
dead from the start costs ``limit`` timeouts, not one per request that was in flight.

Scope: one event loop, for one call of the images stage, which is one worker process of one
partition. Workers do not share what they learn (rows of a host are spread over all of them, and the
only channel to the parent carries rows back), so a host dead from the start costs each worker up to
``limit`` failures; one that dies later also the requests already under way to it (at most the
worker's share of ``per_host_concurrency``). Nothing is remembered across partitions or runs: a host
that was down is asked again next time.
"""

from __future__ import annotations

from clip_assets.download import reasons
from clip_assets.download.network_stats import NetworkStats


class HostBreaker:
    """Consecutive connect failures per host, for one event loop."""

    def __init__(self, limit: int, stats: NetworkStats) -> None:
        self._limit = limit
        self._stats = stats
        self._failures: dict[str, int] = {}
        self._answered: set[str] = set()

    @property
    def limit(self) -> int:
        return self._limit

    def is_open(self, host: str) -> bool:
        return self._limit > 0 and self._failures.get(host, 0) >= self._limit

    def proven(self, host: str) -> bool:
        return host in self._answered

    def record(self, host: str, reason: str | None) -> None:
        """Counts the outcome of one request to ``host``."""
        if reason is None or reason.startswith("http_"):
            self._failures.pop(host, None)
            self._answered.add(host)
        elif reason in reasons.HOST_FAILURES:
            count = self._failures[host] = self._failures.get(host, 0) + 1
            if count == self._limit:
                self._stats.hosts_unreachable += 1
