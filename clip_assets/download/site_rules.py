"""What a site asks of crawlers before we fetch from it: robots.txt, and TDMRep's tdmrep.json.

``SiteRules(settings, get, stats)`` serves one event loop; ``await rules.verdict(target)`` is
None when the URL may be fetched, else a reason: ``robots_txt`` (disallowed for our user-agent
token; status ``opted_out``), ``tdm_reservation`` (the host's tdmrep.json reserves the path;
``opted_out``), ``robots_txt_unreachable`` (robots.txt failed: status ``failed``, transient).
``get(target)`` fetches a small file through the fetcher's own checks and limits.

robots.txt (``respect_robots_txt``) follows RFC 9309: fetched once per host (scheme, host and
port) per run, every row of the host waiting on the one request; parsed with protego (Scrapy's
parser: ``Allow``, wildcards, ``$``, longest match); matched against ``user_agent_token``, and
``*`` when no group names the token; a 4xx answer (or a redirect chain too long to follow)
means no rules; a 5xx answer, a 429, or a failed connection means "stay away": every URL of the
host is ``robots_txt_unreachable`` for this run, for ``retry_failed`` to try again. Only the
first ``SITE_FILE_BYTES`` are read (the RFC's minimum). tdmrep.json (``tdmrep_well_known``) is
fetched the same way; any answer but a 2xx JSON array reserves nothing. At most
``MAX_CACHED_SITES`` hosts' files, and ``MAX_CACHED_BYTES`` of their text, are kept: beyond that
the least recently used host's files are dropped and fetched again if it comes back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from protego import Protego

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.safety import Target
from clip_assets.download.tdmrep import WELL_KNOWN_PATH, TdmRules, parse_tdmrep_json

SITE_FILE_BYTES = 500 * 1024
MAX_CACHED_SITES = 4096
MAX_CACHED_BYTES = 32 * 1024 * 1024


class SiteFile(Protocol):
    """What ``get`` returns: a body for a 2xx answer, else the failure's ``reason``."""

    body: bytes | None
    reason: str | None


Get = Callable[[Target], Awaitable[SiteFile]]


@dataclass(frozen=True)
class _Rules:
    """One host's verdict inputs: its robots.txt (or that it failed) and TDM rules."""

    robots: Protego | None = None
    robots_unreachable: bool = False
    tdm: TdmRules | None = None
    size: int = 0


class SiteRules:
    """robots.txt and tdmrep.json per host, fetched once and cached (module docstring)."""

    def __init__(self, settings: DownloadSettings, get: Get, stats: NetworkStats) -> None:
        self._settings = settings
        self._get = get
        self._stats = stats
        self._cache: OrderedDict[str, _Rules] = OrderedDict()
        self._cached_bytes = 0
        self._pending: dict[str, asyncio.Future[_Rules]] = {}

    async def verdict(self, target: Target) -> str | None:
        if not (self._settings.respect_robots_txt or self._settings.tdmrep_well_known):
            return None
        rules = await self._rules(target)
        if rules.robots_unreachable:
            return reasons.ROBOTS_TXT_UNREACHABLE
        url = str(target.url)
        if rules.robots is not None and not rules.robots.can_fetch(
            url, self._settings.user_agent_token
        ):
            return reasons.ROBOTS_TXT
        path = target.url.raw_path.decode("ascii")
        if rules.tdm is not None and rules.tdm.reserved(path):
            return reasons.TDM_RESERVATION
        return None

    async def _rules(self, target: Target) -> _Rules:
        origin = f"{target.url.scheme}://{target.host}:{target.port}"
        cached = self._cache.get(origin)
        if cached is not None:
            self._cache.move_to_end(origin)
            return cached
        pending = self._pending.get(origin)
        if pending is None:
            pending = self._pending[origin] = asyncio.ensure_future(self._load(origin, target))
        return await asyncio.shield(pending)

    async def _load(self, origin: str, target: Target) -> _Rules:
        try:
            robots, unreachable, tdm, size = None, False, None, 0
            if self._settings.respect_robots_txt:
                robots_file = await self._fetch(target, "/robots.txt")
                if robots_file.body is not None:
                    size += len(robots_file.body)
                    robots = _parse_robots(robots_file.body)
                elif reasons.is_transient(robots_file.reason):
                    unreachable = True
                    self._stats.robots_txt_unreachable += 1
            if self._settings.tdmrep_well_known and not unreachable:
                tdm_file = await self._fetch(target, WELL_KNOWN_PATH)
                if tdm_file.body is not None:
                    size += len(tdm_file.body)
                    tdm = parse_tdmrep_json(tdm_file.body)
            rules = _Rules(robots, unreachable, tdm, size)
            self._keep(origin, rules)
            return rules
        finally:
            del self._pending[origin]

    async def _fetch(self, target: Target, path: str) -> SiteFile:
        self._stats.site_files_fetched += 1
        url = target.url.copy_with(raw_path=path.encode("ascii"), fragment=None)
        return await self._get(Target(url, target.host, target.port))

    def _keep(self, origin: str, rules: _Rules) -> None:
        self._cache[origin] = rules
        self._cached_bytes += rules.size
        while len(self._cache) > MAX_CACHED_SITES or self._cached_bytes > MAX_CACHED_BYTES:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.size


def _parse_robots(body: bytes) -> Protego:
    text = body[:SITE_FILE_BYTES].decode("utf-8", errors="replace")
    try:
        return Protego.parse(text)
    except Exception:  # a file protego cannot read states no rule we could follow
        return Protego.parse("")
