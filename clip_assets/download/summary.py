"""Per-partition counts of an images table, for Dagster materialization metadata and logs.

``summarize`` reads an IMAGES_SCHEMA table (and optionally how long it took) and returns a
plain JSON-ready dict; it writes nothing.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

TOP_DOMAINS = 10


def summarize(images: pa.Table, elapsed_s: float | None = None) -> dict:
    """Counts of one images table.

    Keys: ``attempted`` (rows), ``ok``, ``failed``, ``opted_out``, ``hash_mismatch``,
    ``skipped``, ``success_rate`` (ok / attempted, 0.0 when empty), ``reasons`` (reason ->
    count, every non-ok row), ``bytes`` (downloaded body bytes), ``stored_bytes`` (re-encoded
    image bytes), ``images_per_s`` (ok / elapsed_s, only when ``elapsed_s`` is given) and
    ``top_failing_domains`` (up to 10 ``[host, failures]`` pairs, most failures first).
    """
    attempted = images.num_rows
    statuses = Counter(images["status"].to_pylist())
    reasons = Counter(r for r in images["reason"].to_pylist() if r is not None)
    failed_urls = images.filter(pc.equal(images["status"], "failed"))["url"].to_pylist()
    domains = Counter(_host(url) for url in failed_urls)
    ok = statuses.get("ok", 0)
    summary = {
        "attempted": attempted,
        "ok": ok,
        "failed": statuses.get("failed", 0),
        "opted_out": statuses.get("opted_out", 0),
        "hash_mismatch": statuses.get("hash_mismatch", 0),
        "skipped": statuses.get("skipped", 0),
        "success_rate": ok / attempted if attempted else 0.0,
        "reasons": dict(reasons.most_common()),
        "bytes": int(pc.sum(images["bytes"]).as_py() or 0),
        "stored_bytes": int(pc.sum(pc.binary_length(images["image"])).as_py() or 0),
        "top_failing_domains": [[d, n] for d, n in domains.most_common(TOP_DOMAINS)],
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
