"""Per-partition counts of an images table, for Dagster materialization metadata and logs.

``summarize`` reads an IMAGES_SCHEMA table (and optionally how long it took) and returns a
plain JSON-ready dict; ``summarize_file`` returns the same for an images parquet file, reading
it a row group at a time so a partition's images are never all in memory. Neither writes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TOP_DOMAINS = 10


def summarize(images: pa.Table, elapsed_s: float | None = None) -> dict:
    """Counts of one images table.

    Keys: ``attempted`` (rows), ``ok``, ``failed``, ``opted_out``, ``hash_mismatch``,
    ``skipped``, ``success_rate`` (ok / attempted, 0.0 when empty), ``reasons`` (reason ->
    count, every non-ok row), ``bytes`` (downloaded body bytes), ``stored_bytes`` (re-encoded
    image bytes), ``images_per_s`` (ok / elapsed_s, only when ``elapsed_s`` is given) and
    ``top_failing_domains`` (up to 10 ``[host, failures]`` pairs, most failures first).
    """
    counts = _Counts()
    counts.add(images)
    return counts.summary(elapsed_s)


def summarize_file(path: Path, elapsed_s: float | None = None) -> dict:
    """``summarize`` of the images parquet file at ``path``, one row group at a time."""
    counts = _Counts()
    with pq.ParquetFile(path) as source:
        for batch in source.iter_batches(columns=["url", "status", "reason", "bytes", "image"]):
            counts.add(pa.Table.from_batches([batch]))
    return counts.summary(elapsed_s)


class _Counts:
    """Running totals over any number of pieces of one images table."""

    def __init__(self) -> None:
        self.attempted = self.bytes = self.stored_bytes = 0
        self.statuses: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.domains: Counter[str] = Counter()

    def add(self, images: pa.Table) -> None:
        self.attempted += images.num_rows
        self.statuses.update(images["status"].to_pylist())
        self.reasons.update(r for r in images["reason"].to_pylist() if r is not None)
        failed_urls = images.filter(pc.equal(images["status"], "failed"))["url"].to_pylist()
        self.domains.update(_host(url) for url in failed_urls)
        self.bytes += int(pc.sum(images["bytes"]).as_py() or 0)
        self.stored_bytes += int(pc.sum(pc.binary_length(images["image"])).as_py() or 0)

    def summary(self, elapsed_s: float | None) -> dict:
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
        }
        if elapsed_s is not None:
            summary["elapsed_s"] = elapsed_s
            summary["images_per_s"] = ok / elapsed_s if elapsed_s > 0 else 0.0
        return summary


def _host(url: str | None) -> str:
    try:
        return urlsplit(url or "").hostname or "(no host)"
    except ValueError:
        return "(no host)"
