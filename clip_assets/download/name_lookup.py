"""Host names to addresses for one event loop: an asynchronous DNS client with a TTL cache.

``HostLookup(settings, stats)`` serves one event loop; ``await lookup.addresses(host)`` returns
the host's addresses (A answers first, then AAAA) or a reason: ``dns_not_found`` (NXDOMAIN, or
no address record), ``dns_error`` (every server failed, e.g. SERVFAIL) or ``dns_timeout``. It
never raises for a bad name or a bad server and counts lookups, cache hits and failures by kind
in ``stats``. Guarantees: at most one lookup per name is under way however many URLs wait on
it; answers are kept for their TTL held between ``dns_min_ttl_s`` and ``dns_max_ttl_s``
(NXDOMAIN and empty answers for the zone's negative TTL, RFC 2308, held the same way); server
failures and timeouts are not kept, so a retry asks again (a round of SERVFAILs from every
server is asked once more within the lookup); the cache holds at most
``MAX_CACHED_NAMES`` names, least recently used out first.

Why dnspython's asyncio resolver (``resolver="dns"``): getaddrinfo blocks a thread per lookup
(the old path kept a pool of 64 DNS threads per worker, and a slow resolver still serialised
them), hides TTLs, and cannot be pointed at a chosen server. dnspython is pure Python, well kept
and already handles what a stub resolver must: asking the next server on SERVFAIL or timeout
within one lookup, TCP fallback on truncation, CNAME chains and their TTLs; aiodns would add a
C library (c-ares) for no gain at our lookup rates (a few hundred a second per worker).
``resolver="system"`` keeps getaddrinfo on threads for machines whose names come from
/etc/hosts or nsswitch, with answers cached for ``dns_min_ttl_s``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings, dns_server_address
from clip_assets.download.network_stats import NetworkStats

MAX_CACHED_NAMES = 65_536
#: Once one address family has answered, how long the other may still take (RFC 8305's
#: "resolution delay"): a server that drops AAAA queries must not cost every host a timeout.
SECOND_FAMILY_GRACE_S = 0.05
#: dnspython moves to the next server on SERVFAIL; when every server has failed, the whole
#: round is tried once more after a pause, since resolvers often fail a query now and answer
#: it a moment later (the cost for a truly broken zone: one more query per server).
SERVER_FAILURE_ROUNDS = 2
SERVER_FAILURE_PAUSE_S = 0.1

# getaddrinfo's answers for a name that does not exist (as opposed to a resolver failing).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
_REASON = {
    "nxdomain": reasons.DNS_NOT_FOUND,
    "no_address": reasons.DNS_NOT_FOUND,
    "server_failure": reasons.DNS_ERROR,
    "timeout": reasons.DNS_TIMEOUT,
}


@dataclass(frozen=True)
class Answer:
    """One lookup's outcome: ``addresses``, or the failure ``kind``; ``ttl_s`` None = keep not."""

    addresses: tuple[str, ...] = ()
    kind: str | None = None
    ttl_s: float | None = None


class HostLookup:
    """Cached, deduplicated lookups for one event loop (see the module docstring)."""

    def __init__(self, settings: DownloadSettings, stats: NetworkStats) -> None:
        self._settings = settings
        self._stats = stats
        self._ask = _DnsServers(settings) if settings.resolver == "dns" else _System(settings)
        self._cache: OrderedDict[str, tuple[float, tuple[str, ...] | str]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[tuple[str, ...] | str]] = {}

    async def addresses(self, host: str) -> tuple[str, ...] | str:
        """The addresses of ``host`` (a name, not an IP literal), or a ``dns_*`` reason."""
        cached = self._cache.get(host)
        if cached is not None and cached[0] > time.monotonic():
            self._cache.move_to_end(host)
            self._stats.dns_cache_hits += 1
            return cached[1]
        pending = self._pending.get(host)
        if pending is None:
            self._stats.dns_lookups += 1
            pending = self._pending[host] = asyncio.ensure_future(self._resolve(host))
        else:
            self._stats.dns_cache_hits += 1
        # Shielded: a request that times out must not cancel the answer others wait for.
        return await asyncio.shield(pending)

    async def _resolve(self, host: str) -> tuple[str, ...] | str:
        try:
            answer = await self._ask(host)
        except Exception:  # a resolver bug must cost one row's lookup, not the partition
            answer = Answer(kind="server_failure")
        finally:
            del self._pending[host]
        result: tuple[str, ...] | str = answer.addresses or _REASON[answer.kind or "no_address"]
        if answer.kind is not None:
            self._stats.dns_failures[answer.kind] += 1
        if answer.ttl_s is not None:
            s = self._settings
            ttl = min(max(answer.ttl_s, s.dns_min_ttl_s), s.dns_max_ttl_s)
            self._cache[host] = (time.monotonic() + ttl, result)
            self._cache.move_to_end(host)
            while len(self._cache) > MAX_CACHED_NAMES:
                self._cache.popitem(last=False)
        return result


class _DnsServers:
    """Asks the configured servers for A and AAAA records at once."""

    def __init__(self, settings: DownloadSettings) -> None:
        try:
            resolver = dns.asyncresolver.Resolver(configure=not settings.dns_servers)
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError(
                "no DNS server: /etc/resolv.conf names none; set dns_servers, or resolver='system'"
            ) from exc
        if settings.dns_servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*dns_server_address(server))
                for server in settings.dns_servers
            ]
        resolver.cache = None  # ours holds TTLs between a floor and a ceiling
        resolver.timeout = settings.dns_timeout_s
        # Each server once, and one more try: a single dropped datagram is not a failure.
        resolver.lifetime = settings.dns_timeout_s * (len(resolver.nameservers) + 1)
        self._resolver = resolver

    async def __call__(self, host: str) -> Answer:
        try:
            name = dns.name.from_text(host)
        except dns.exception.DNSException:
            return Answer(kind="nxdomain", ttl_s=0.0)  # not a name any server could know
        queries = [asyncio.ensure_future(self._query(name, t)) for t in ("A", "AAAA")]
        try:
            done, _ = await asyncio.wait(queries, return_when=asyncio.FIRST_COMPLETED)
            if any(task.result().addresses for task in done):
                await asyncio.wait(queries, timeout=SECOND_FAMILY_GRACE_S)
            else:
                await asyncio.wait(queries)
        finally:
            for task in queries:
                task.cancel()
        return _combine([t.result() for t in queries if t.done() and not t.cancelled()])

    async def _query(self, name: dns.name.Name, rdtype: str) -> Answer:
        for round_ in range(SERVER_FAILURE_ROUNDS):
            if round_:
                await asyncio.sleep(SERVER_FAILURE_PAUSE_S)
            answer = await self._query_once(name, rdtype)
            if answer.kind != "server_failure":
                break
        return answer

    async def _query_once(self, name: dns.name.Name, rdtype: str) -> Answer:
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.kwargs.get("responses", {}).values())
            return Answer(kind="nxdomain", ttl_s=_negative_ttl(responses[0] if responses else None))
        except dns.resolver.NoAnswer as exc:
            return Answer(kind="no_address", ttl_s=_negative_ttl(exc.kwargs.get("response")))
        except dns.exception.Timeout:
            return Answer(kind="timeout")
        except (dns.exception.DNSException, OSError):
            return Answer(kind="server_failure")  # NoNameservers: SERVFAIL, REFUSED, ...
        ttl = max(0.0, answer.expiration - time.time())
        return Answer(tuple(str(r.address) for r in answer), ttl_s=ttl)


def _combine(answers: list[Answer]) -> Answer:
    """A and AAAA answers as one: any address wins; then a transient failure (the name may
    well exist); then "does not exist"."""
    addresses = tuple(a for answer in answers for a in answer.addresses)
    if addresses:
        ttls = [a.ttl_s for a in answers if a.addresses and a.ttl_s is not None]
        return Answer(addresses, ttl_s=min(ttls) if ttls else None)
    kinds = {answer.kind for answer in answers}
    for kind in ("timeout", "server_failure", "nxdomain", "no_address"):
        if kind in kinds:
            ttls = [a.ttl_s for a in answers if a.ttl_s is not None]
            negative = kind in ("nxdomain", "no_address") and len(ttls) == len(answers)
            return Answer(kind=kind, ttl_s=min(ttls) if negative else None)
    return Answer(kind="timeout")  # neither family answered within the grace time


def _negative_ttl(response: dns.message.Message | None) -> float:
    """How long a "no such name / no such record" answer may be kept: the SOA's TTL capped by
    its minimum field (RFC 2308), or 0 (then the floor applies) when the server sent none."""
    for rrset in getattr(response, "authority", None) or ():
        if rrset.rdtype == dns.rdatatype.SOA:
            return float(min(rrset.ttl, rrset[0].minimum))
    return 0.0


class _System:
    """getaddrinfo on the loop's executor: honours /etc/hosts and nsswitch, reports no TTL."""

    def __init__(self, settings: DownloadSettings) -> None:
        self._ttl_s = settings.dns_min_ttl_s

    async def __call__(self, host: str) -> Answer:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                return Answer(kind="nxdomain", ttl_s=self._ttl_s)
            return Answer(kind="server_failure")
        except (OSError, UnicodeError):
            return Answer(kind="server_failure")
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        return Answer(addresses, ttl_s=self._ttl_s) if addresses else Answer(kind="no_address")
