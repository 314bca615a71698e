"""Fetching image bytes over HTTP: limits, time limits, redirects, retries, size cap, consent.

``Fetcher`` serves one event loop. It reads ``DownloadSettings`` and writes nothing; ``fetch``
never raises for a bad URL or a bad server, it returns a ``Fetched`` whose ``reason`` says why
(vocabulary in ``reasons``). Guarantees: at most ``concurrency`` requests in flight and
``per_host_concurrency`` per host; every connection goes to an address ``safety`` approved,
after every redirect too; no request goes to a host whose breaker is open (``host_breaker``) or
whose robots.txt or tdmrep.json says no (``site_rules``), and an answer that opts out
(X-Robots-Tag, ``tdm-reservation: 1``) is decided from its headers, its body never read; one
HTTP request never outlives ``total_timeout_s`` however slowly the server drips; a body is never
buffered past ``max_body_bytes``; only transient failures are retried, ``retries`` times, with
jittered exponential backoff or the server's Retry-After, except those decided for the whole
run (``reasons.DEFERRED_REASONS``). ``stats`` counts lookups, open breakers and site files.

Why several small clients: httpx's connection pool does work proportional to its size on every
request. Against a loopback server on the 2-core dev machine, one client with 64 connections
served ~260 requests/s at ~1.5 ms of client CPU each; 8 clients of 8 connections ~740/s at
~0.7 ms; with decoding included, 32 clients of 2 spent ~15% less event-loop CPU per image than
8 of 8. Clients open lazily, so a small shard pays for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.host_breaker import HostBreaker
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.safety import GuardedBackend, RefusedAddress, Resolver, Target, parse_url
from clip_assets.download.site_rules import SITE_FILE_BYTES, SiteRules
from clip_assets.download.tdmrep import reserved_by_header
from clip_assets.download.x_robots_tag import opt_out_directive

_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Fetched:
    """Outcome of one URL: ``body`` when it succeeded, else ``reason``."""

    body: bytes | None = None
    reason: str | None = None
    http_status: int | None = None
    attempts: int = 0
    opted_out: str | None = None  # the opt-out reason (x_robots_tag:noai, robots_txt, ...)
    retry_after_s: float | None = None
    location: str | None = None  # set only between redirect hops


Read = Callable[[httpx.Response], Awaitable[Fetched]]
_OPTED_OUT = {reasons.ROBOTS_TXT, reasons.TDM_RESERVATION}


@dataclass
class _Contact:
    """What one request under ``Fetcher._first_contact`` found: the host did not answer."""

    unreachable: bool = False


class Fetcher:
    """``async with Fetcher(settings, concurrency, per_host) as f: await f.fetch(url)``.

    With ``retry_timeouts`` off, a time-out ends the row's tries at once: the caller gives
    such rows their remaining retries later (``shard_download``'s second pass)."""

    def __init__(
        self,
        settings: DownloadSettings,
        concurrency: int,
        per_host: int,
        retry_timeouts: bool = True,
    ) -> None:
        self._settings = settings
        self._retry_timeouts = retry_timeouts
        self._global = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._probes: dict[str, asyncio.Semaphore] = {}
        self.stats = NetworkStats()
        self._resolver = Resolver(settings, self.stats)
        self._breaker = HostBreaker(settings.host_failure_limit, self.stats)
        self._site = SiteRules(settings, self._get_site_file, self.stats)
        self._max_clients = math.ceil(concurrency / settings.connections_per_client)
        self._client_size = math.ceil(concurrency / self._max_clients)
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        # Loading the CA bundle costs ~40 ms: do it once, not once per client.
        self._tls = httpx.create_ssl_context()

    def _client(self) -> httpx.AsyncClient:
        s, size = self._settings, self._client_size
        transport = httpx.AsyncHTTPTransport(
            verify=self._tls,
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            trust_env=False,
        )
        # httpx offers no public hook for the connect step; the pool's backend is the one
        # place every TCP connection passes through, redirects and retries included.
        transport._pool._network_backend = GuardedBackend(self._resolver)
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=s.connect_timeout_s,
                read=s.read_timeout_s,
                write=s.read_timeout_s,
                pool=None,  # waiting for a pooled connection is bounded by our semaphores
            ),
            headers={"User-Agent": s.user_agent, "Accept": "image/*,*/*;q=0.8"},
            follow_redirects=False,
            trust_env=False,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.aclose()

    async def fetch(self, url: str | None) -> Fetched:
        """Downloads ``url`` with retries; the result's ``attempts`` counts tries made."""
        target = parse_url(url)
        if isinstance(target, str):
            return Fetched(reason=target)
        s = self._settings
        for attempt in range(s.retries + 1):
            result = await self._follow(target, self._read, site_rules=True)
            result.attempts = attempt + 1
            if not reasons.is_transient(result.reason) or attempt == s.retries:
                return result
            if result.reason in reasons.DEFERRED_REASONS:
                return result  # decided for the host for this run: asking again only waits
            if result.reason == reasons.TIMEOUT and not self._retry_timeouts:
                return result
            delay = random.uniform(0, min(s.backoff_max_s, s.backoff_base_s * 2**attempt))
            if result.retry_after_s is not None:
                if result.retry_after_s > s.retry_after_max_s:
                    return result  # the server asks for longer than a run waits: retry later
                delay = max(delay, result.retry_after_s)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns")

    async def _get_site_file(self, target: Target) -> Fetched:
        """A host's robots.txt or tdmrep.json: its first ``SITE_FILE_BYTES``, redirects
        followed, every check but the site's own rules."""
        return await self._follow(target, self._read_site_file, site_rules=False)

    async def _follow(self, target: Target, read: Read, site_rules: bool) -> Fetched:
        """One try: follows up to ``max_redirects`` redirects, checking every hop."""
        for hop in range(self._settings.max_redirects + 1):
            refused = await self._refusal(target, site_rules)
            if refused is not None:
                return refused
            host = target.host
            async with self._host_slot(host), self._first_contact(host) as contact, self._global:
                if self._breaker.is_open(host):  # it opened while this one waited
                    return Fetched(reason=reasons.HOST_UNREACHABLE)
                result = await self._request(target, read)
                # Counted before any slot is released, so a waiter sees this outcome.
                self._breaker.record(host, result.reason)
                contact.unreachable = result.reason in reasons.HOST_FAILURES
            if result.location is None:
                return result
            if hop == self._settings.max_redirects:
                return Fetched(reason=reasons.TOO_MANY_REDIRECTS, http_status=result.http_status)
            following = parse_url(str(target.url.join(result.location)))
            if isinstance(following, str):
                reason = reasons.BAD_REDIRECT if following == reasons.MISSING_URL else following
                return Fetched(reason=reason, http_status=result.http_status)
            target = following
        raise AssertionError("unreachable: the last hop always returns")

    async def _refusal(self, target: Target, site_rules: bool) -> Fetched | None:
        """Why ``target`` must not be requested (address, breaker, the site's rules), or None."""
        _, refused = await self._resolver.check(target)
        if refused:
            return Fetched(reason=refused)
        if self._breaker.is_open(target.host):
            return Fetched(reason=reasons.HOST_UNREACHABLE)
        verdict = await self._site.verdict(target) if site_rules else None
        if verdict in _OPTED_OUT:
            return Fetched(opted_out=verdict)
        return Fetched(reason=verdict) if verdict else None

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = asyncio.Semaphore(self._per_host)
        return slot

    @contextlib.asynccontextmanager
    async def _first_contact(self, host: str) -> AsyncIterator[_Contact]:
        """At most ``host_failure_limit`` requests to a host that has not answered yet, in
        flight or failed: a probe that fails to connect keeps its token, so a host dead from
        the start sees exactly ``limit`` requests however many wait. The tokens come back
        when the host answers (it is proven and no longer probed) or its breaker opens (the
        waiters then return ``host_unreachable`` without a request)."""
        contact = _Contact()
        if self._breaker.limit == 0 or self._breaker.proven(host):
            self._probes.pop(host, None)
            yield contact
            return
        probe = self._probes.get(host)
        if probe is None:
            probe = self._probes[host] = asyncio.Semaphore(self._breaker.limit)
        await probe.acquire()
        try:
            yield contact
        finally:
            if not contact.unreachable or self._breaker.is_open(host):
                probe.release()

    async def _request(self, target: Target, read: Read) -> Fetched:
        """One HTTP GET under the total time limit; maps every failure to a reason."""
        i = self._pick()
        self._busy[i] += 1
        try:
            with anyio.fail_after(self._settings.total_timeout_s):
                async with self._clients[i].stream("GET", target.url) as response:
                    return await read(response)
        except RefusedAddress as exc:
            return Fetched(reason=str(exc))
        except (TimeoutError, httpx.TimeoutException):
            return Fetched(reason=reasons.TIMEOUT)
        except httpx.ConnectError as exc:
            return Fetched(reason=reasons.TLS_ERROR if _tls_failed(exc) else reasons.CONNECT_ERROR)
        except (httpx.TransportError, httpx.DecodingError):
            return Fetched(reason=reasons.NETWORK_ERROR)
        finally:
            self._busy[i] -= 1

    def _pick(self) -> int:
        """Index of the least busy client, opening another while all are full."""
        if self._busy:
            i = self._busy.index(min(self._busy))
            if self._busy[i] < self._client_size or len(self._clients) == self._max_clients:
                return i
        self._clients.append(self._client())
        self._busy.append(0)
        return len(self._clients) - 1

    async def _read(self, response: httpx.Response) -> Fetched:
        answered = _status(response)
        if answered is not None:
            return answered
        code, s = response.status_code, self._settings
        if s.respect_opt_out:
            tags = response.headers.get_list("x-robots-tag")
            directive = opt_out_directive(tags, s.user_agent_token) if tags else None
            # Decided from the headers alone: the body is never downloaded.
            if directive:
                return Fetched(http_status=code, opted_out=reasons.X_ROBOTS_TAG_PREFIX + directive)
            if reserved_by_header(response.headers.get_list("tdm-reservation")):
                return Fetched(http_status=code, opted_out=reasons.TDM_RESERVATION)
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > s.max_body_bytes:
            return Fetched(reason=reasons.TOO_LARGE, http_status=code)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > s.max_body_bytes:
                return Fetched(reason=reasons.TOO_LARGE, http_status=code)
            chunks.append(chunk)
        return Fetched(body=b"".join(chunks), http_status=code)

    async def _read_site_file(self, response: httpx.Response) -> Fetched:
        answered = _status(response)
        if answered is not None:
            return answered
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= SITE_FILE_BYTES:
                break  # the rest is not read: crawlers need only parse this much (RFC 9309)
        return Fetched(body=b"".join(chunks)[:SITE_FILE_BYTES], http_status=response.status_code)


def _status(response: httpx.Response) -> Fetched | None:
    """The outcome of a redirect or a non-2xx answer; None for a 2xx one (read its body)."""
    code = response.status_code
    if code in _REDIRECTS:
        location = response.headers.get("location")
        if not location:
            return Fetched(reason=reasons.BAD_REDIRECT, http_status=code)
        return Fetched(http_status=code, location=location)
    if not 200 <= code < 300:
        retry_after = _retry_after_s(response.headers.get("retry-after"))
        return Fetched(
            reason=reasons.http_reason(code), http_status=code, retry_after_s=retry_after
        )
    return None


def _retry_after_s(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tls_failed(exc: BaseException) -> bool:
    """True when a connect error came from the TLS handshake (bad or expired certificate)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
