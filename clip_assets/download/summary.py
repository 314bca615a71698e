"""Per-partition counts of an images table, for Dagster materialization metadata and logs.

``summarize`` reads an IMAGES_SCHEMA table (and optionally how long it took and the
``NetworkStats`` the download returned) and returns a plain JSON-ready dict; ``summarize_file``
returns the same for an images parquet file, reading it a row group at a time so a partition's
images are never all in memory. The writer stores the same counts in each images file's footer
(``summary_metadata``), which ``stored_summary`` reads back without touching the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.download.network_stats import NetworkStats
from clip_assets.streamed_parquet import open_streamed

TOP_DOMAINS = 10
#: Footer key of the counts an images file holds (see ``writer.atomic_parquet``).
SUMMARY_KEY = b"clip_assets.summary"


def summarize(
    images: pa.Table, elapsed_s: float | None = None, network: NetworkStats | None = None
) -> dict:
    """Counts of one images table.

    Keys: ``attempted`` (rows), ``ok``, ``failed``, ``opted_out``, ``hash_mismatch``,
    ``skipped``, ``success_rate`` (ok / attempted, 0.0 when empty), ``reasons`` (reason ->
    count, every non-ok row), ``bytes`` (downloaded body bytes), ``stored_bytes`` (re-encoded
    image bytes), ``images_per_s`` (ok / elapsed_s, only when ``elapsed_s`` is given) and
    ``top_failing_domains`` (up to 10 ``[host, failures]`` pairs, most failures first) and
    ``content_sha256`` (a digest of every row's uid and stored image bytes, in order: what the
    embeddings stage consumes, so it can tell whether its input changed); with ``network``, its
    ``NetworkStats.as_summary`` keys too (``dns_lookups``, ``dns_cache_hit_rate``,
    ``dns_failures``, ``hosts_unreachable``, ...).
    """
    counts = Counts()
    counts.add(images)
    return counts.summary(elapsed_s, network)


def summarize_file(
    path: Path, elapsed_s: float | None = None, network: NetworkStats | None = None
) -> dict:
    """``summarize`` of the images parquet file at ``path``, one row group at a time."""
    counts = Counts()
    with open_streamed(path) as source:
        columns = ["uid", "url", "status", "reason", "bytes", "image"]
        for batch in source.iter_batches(columns=columns):
            counts.add(pa.Table.from_batches([batch]))
    return counts.summary(elapsed_s, network)


class Counts:
    """Running totals over any number of pieces of one images table."""

    def __init__(self) -> None:
        self.attempted = self.bytes = self.stored_bytes = 0
        self.statuses: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.domains: Counter[str] = Counter()
        self.content = hashlib.sha256()

    def add(self, images: pa.Table) -> None:
        self.attempted += images.num_rows
        # What later stages consume: which uid holds which stored bytes, in order.
        for uid, image in zip(images["uid"].to_pylist(), images["image"].to_pylist(), strict=True):
            self.content.update(f"{uid}:{len(image) if image else -1}:".encode())
            self.content.update(image or b"")
        self.statuses.update(images["status"].to_pylist())
        self.reasons.update(r for r in images["reason"].to_pylist() if r is not None)
        failed_urls = images.filter(pc.equal(images["status"], "failed"))["url"].to_pylist()
        self.domains.update(_host(url) for url in failed_urls)
        self.bytes += int(pc.sum(images["bytes"]).as_py() or 0)
        self.stored_bytes += int(pc.sum(pc.binary_length(images["image"])).as_py() or 0)

    def summary(self, elapsed_s: float | None, network: NetworkStats | None = None) -> dict:
        ok, attempted = self.statuses.get("ok", 0), self.attempted
        summary = {
            "attempted": attempted,
            "ok": ok,
            "failed": self.statuses.get("failed", 0),
            "opted_out": self.statuses.get("opted_out", 0),
            "hash_mismatch": self.statuses.get("hash_mismatch", 0),
            "skipped": self.statuses.get("skipped", 0),
            "success_rate": ok / attempted if attempted else 0.0,
            "reasons": dict(self.reasons.most_common()),
            "bytes": self.bytes,
            "stored_bytes": self.stored_bytes,
            "top_failing_domains": [[d, n] for d, n in self.domains.most_common(TOP_DOMAINS)],
            "content_sha256": self.content.hexdigest(),
        }
        if network is not None:
            summary.update(network.as_summary())
        return summary if elapsed_s is None else with_elapsed(summary, elapsed_s)


def with_elapsed(summary: dict, elapsed_s: float) -> dict:
    """``summary`` plus ``elapsed_s`` and ``images_per_s`` (ok images over that time)."""
    rate = summary["ok"] / elapsed_s if elapsed_s > 0 else 0.0
    return {**summary, "elapsed_s": elapsed_s, "images_per_s": rate}


def summary_metadata(summary: dict) -> dict[bytes, bytes]:
    """Parquet footer metadata holding ``summary``."""
    return {SUMMARY_KEY: json.dumps(summary, sort_keys=True).encode()}


def stored_summary(file_metadata: dict[bytes, bytes] | None) -> dict | None:
    """The counts an images file's footer holds; None for files written before they did."""
    raw = (file_metadata or {}).get(SUMMARY_KEY)
    return json.loads(raw) if raw else None


def _host(url: str | None) -> str:
    try:
        return urlsplit(url or "").hostname or "(no host)"
    except ValueError:
        return "(no host)"
