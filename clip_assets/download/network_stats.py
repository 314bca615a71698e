"""What one partition's downloads cost the network: name lookups, dead hosts, site rules.

``NetworkStats`` is filled by one event loop's ``Fetcher`` (its lookups, breaker and site-rule
files), travels pickled from worker processes, and adds up with ``+``. ``as_summary`` turns it
into the flat, JSON-ready keys the images summary carries. It reads and writes nothing else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class NetworkStats:
    """Counts of one event loop (or, added up, of one partition).

    ``dns_lookups``: names sent to a resolver; ``dns_cache_hits``: times an address was
    needed (a URL's check, a new connection) and came from the cache or a lookup already under
    way; ``dns_failures``: lookups that failed, by kind (``nxdomain``, ``no_address``,
    ``server_failure``, ``timeout``); ``hosts_unreachable``: times a host's breaker opened;
    ``site_files_fetched``: robots.txt and tdmrep.json files requested, one per host each;
    ``robots_txt_unreachable``: hosts whose robots.txt failed (5xx, timeout), so none of their
    URLs was fetched.
    """

    dns_lookups: int = 0
    dns_cache_hits: int = 0
    dns_failures: Counter[str] = field(default_factory=Counter)
    hosts_unreachable: int = 0
    site_files_fetched: int = 0
    robots_txt_unreachable: int = 0

    def __add__(self, other: NetworkStats) -> NetworkStats:
        return NetworkStats(
            self.dns_lookups + other.dns_lookups,
            self.dns_cache_hits + other.dns_cache_hits,
            self.dns_failures + other.dns_failures,
            self.hosts_unreachable + other.hosts_unreachable,
            self.site_files_fetched + other.site_files_fetched,
            self.robots_txt_unreachable + other.robots_txt_unreachable,
        )

    @property
    def dns_cache_hit_rate(self) -> float:
        """Share of address needs met without a query of their own (0.0 when none)."""
        needs = self.dns_lookups + self.dns_cache_hits
        return self.dns_cache_hits / needs if needs else 0.0

    def as_summary(self) -> dict:
        """The images-summary keys: ``dns_lookups``, ``dns_cache_hit_rate``, ``dns_failures``
        (kind -> count), ``hosts_unreachable``, ``site_files_fetched``,
        ``robots_txt_unreachable``."""
        return {
            "dns_lookups": self.dns_lookups,
            "dns_cache_hit_rate": round(self.dns_cache_hit_rate, 4),
            "dns_failures": dict(self.dns_failures.most_common()),
            "hosts_unreachable": self.hosts_unreachable,
            "site_files_fetched": self.site_files_fetched,
            "robots_txt_unreachable": self.robots_txt_unreachable,
        }
