"""Is a partition's download going wrong? Judged from its counts, with advice on what to change.

``assess(done, ok, reasons, thresholds)`` reads a partition's row count, its ``ok`` count and
its reason counts (an images summary has them: ``assess_summary``; so does a running
partition's ``DownloadProgress``: ``assess_progress``) and returns the ``Problem``s found:
``low_success_rate`` when ok / done is under ``min_success_rate``, and ``<group>_dominates``
when one group of failure reasons (DNS, unreachable hosts, rate limiting, server errors,
robots.txt failures) is more than ``max_reason_share`` of the rows. Each problem carries a
sentence that says what happened and what to set. Opt-outs are the sites' wishes, not trouble:
they lower the success rate but never dominate. Nothing is judged before ``min_rows`` rows, so
the first few failures of a run do not cry wolf. ``HealthWatch`` remembers what it already
reported, so a caller polling a running partition warns once per problem. Reads and writes
nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clip_assets.download import reasons as vocabulary

if TYPE_CHECKING:
    from clip_assets.download.shard_download import DownloadProgress

#: Failure groups worth a warning of their own, and what to do about each.
ADVICE = {
    "dns": "name lookups are failing: set dns_servers to a fast caching resolver (a local "
    "unbound or dnsmasq), or raise dns_timeout_s",
    "unreachable": "hosts are not answering in time: lower concurrency or "
    "per_host_concurrency, or raise connect_timeout_s / read_timeout_s; rows left as "
    "host_unreachable or timeout are retried by retry_failed_only",
    "rate_limited": "hosts are rate-limiting us (HTTP 429): lower per_host_concurrency",
    "server_errors": "hosts answer 5xx: lower concurrency and retry later with retry_failed_only",
    "robots_txt": "robots.txt files cannot be read (5xx, timeouts): those hosts are skipped "
    "for this run; retry later with retry_failed_only",
}


def reason_group(reason: str) -> str | None:
    """The ``ADVICE`` group of a failure reason, or None (a reason about the row itself)."""
    if reason in vocabulary.DNS_REASONS:
        return "dns"
    if reason in (vocabulary.TIMEOUT, vocabulary.CONNECT_ERROR, vocabulary.HOST_UNREACHABLE):
        return "unreachable"
    if reason == "http_429":
        return "rate_limited"
    if reason.startswith("http_5"):
        return "server_errors"
    if reason == vocabulary.ROBOTS_TXT_UNREACHABLE:
        return "robots_txt"
    return None


@dataclass(frozen=True)
class HealthThresholds:
    """When a partition counts as going wrong (see the module docstring)."""

    min_success_rate: float = 0.5
    max_reason_share: float = 0.2
    min_rows: int = 200


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (``low_success_rate`` or ``<group>_dominates``), the ``share``
    of rows it concerns, and ``advice`` a person can act on."""

    kind: str
    share: float
    advice: str


def assess(
    done: int, ok: int, reasons: Mapping[str, int], thresholds: HealthThresholds
) -> list[Problem]:
    """The problems of a partition with ``done`` rows finished, ``ok`` of them ok."""
    if done < max(1, thresholds.min_rows):
        return []
    groups: dict[str, int] = {}
    for reason, count in reasons.items():
        group = reason_group(reason)
        if group is not None:
            groups[group] = groups.get(group, 0) + count
    dominant = sorted(groups.items(), key=lambda item: -item[1])
    problems = [
        Problem(f"{group}_dominates", count / done, f"{count / done:.0%} of rows: {ADVICE[group]}")
        for group, count in dominant
        if count / done > thresholds.max_reason_share
    ]
    rate = ok / done
    if rate < thresholds.min_success_rate:
        cause = f"; {dominant[0][0]} failures lead" if dominant else ""
        advice = f"success rate {rate:.0%} is under {thresholds.min_success_rate:.0%}{cause}"
        if dominant:
            advice += f": {ADVICE[dominant[0][0]]}"
        problems.insert(0, Problem("low_success_rate", rate, advice))
    return problems


def assess_summary(summary: Mapping, thresholds: HealthThresholds) -> list[Problem]:
    """``assess`` of an images summary (``summary.summarize``)."""
    return assess(summary["attempted"], summary["ok"], summary["reasons"], thresholds)


def assess_progress(progress: DownloadProgress, thresholds: HealthThresholds) -> list[Problem]:
    """``assess`` of a running partition's ``DownloadProgress``."""
    return assess(progress.done, progress.ok, progress.reasons, thresholds)


@dataclass
class HealthWatch:
    """``watch.new(progress)`` gives the problems not reported before, for one partition."""

    thresholds: HealthThresholds = field(default_factory=HealthThresholds)
    _reported: set[str] = field(default_factory=set)

    def new(self, progress: DownloadProgress) -> list[Problem]:
        problems = assess_progress(progress, self.thresholds)
        fresh = [p for p in problems if p.kind not in self._reported]
        self._reported.update(p.kind for p in fresh)
        return fresh
