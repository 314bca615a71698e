"""Running counts of a retrieval run, for logs, the CLI and the asset's metadata.

``RetrievalSummary.add`` reads each written hits table (RETRIEVAL_SCHEMA) and its batch's
failures; ``to_dict`` returns a JSON-ready dict. Memory is constant in the number of hits: the
similarity distribution is a fixed histogram (quantiles read from 2,000 bins over [-1, 1],
so within 0.001), and the preview keeps only the best ``PREVIEW_ROWS`` hits. Nothing is written.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.retrieve.query_embedding import QueryFailure

PREVIEW_ROWS = 10
FAILED_EXAMPLES = 10
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_FINE_BINS = 2000
_PLOT_BIN_WIDTH = 0.05


class RetrievalSummary:
    """Totals over every batch of one run."""

    def __init__(self) -> None:
        self.queries = self.hits = self.queries_with_hits = 0
        #: How duplicates were told apart (``HitSelector.method``): off, url or embedding.
        self.deduplication = "off"
        self.dropped: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.failed_examples: list[dict[str, str]] = []
        self._histogram = np.zeros(_FINE_BINS, dtype=np.int64)
        self._sum = 0.0
        self._min, self._max = np.inf, -np.inf
        self._best: list[tuple[float, int, dict[str, Any]]] = []
        self._order = 0

    def add(
        self,
        hits: pa.Table,
        *,
        queries: int,
        failures: list[QueryFailure],
        dropped: Counter[str],
    ) -> None:
        """Count one batch: ``queries`` read, its kept ``hits`` and the queries that failed."""
        self.queries += queries
        self.hits += hits.num_rows
        self.queries_with_hits += len(pc.unique(hits["query_id"])) if hits.num_rows else 0
        self.dropped.update(dropped)
        for failure in failures:
            self.failures[failure.reason] += 1
            if len(self.failed_examples) < FAILED_EXAMPLES:
                self.failed_examples.append(
                    {
                        "query_id": failure.query_id,
                        "reason": failure.reason,
                        "detail": failure.detail,
                    }
                )
        similarities = hits["similarity"].to_numpy()
        if similarities.size:
            self._count(similarities)
            self._keep_best(hits, similarities)

    def to_dict(self) -> dict[str, Any]:
        """Keys: ``queries``, ``queries_failed``, ``failure_reasons``, ``failed_examples``,
        ``queries_with_hits``, ``queries_without_hits`` (usable queries whose hits were all
        filtered out), ``hits``, ``hits_per_query``, ``dropped`` (filter -> hits),
        ``deduplication`` (off, url or embedding),
        ``similarity`` (``min``, ``mean``, ``max``, ``p5``..``p95``, and ``histogram``: bin
        ``edges`` and ``counts``, 0.05 wide) and ``preview`` (the best hits, as dicts)."""
        failed = sum(self.failures.values())
        usable = self.queries - failed
        return {
            "queries": self.queries,
            "queries_failed": failed,
            "failure_reasons": dict(self.failures.most_common()),
            "failed_examples": self.failed_examples,
            "queries_with_hits": self.queries_with_hits,
            "queries_without_hits": usable - self.queries_with_hits,
            "hits": self.hits,
            "hits_per_query": self.hits / usable if usable else 0.0,
            "dropped": dict(self.dropped),
            "deduplication": self.deduplication,
            "similarity": self._similarity(),
            "preview": [row for _, _, row in sorted(self._best, reverse=True)],
        }

    def _count(self, similarities: np.ndarray) -> None:
        bins = np.clip(
            ((similarities + 1.0) / 2.0 * _FINE_BINS).astype(np.int64), 0, _FINE_BINS - 1
        )
        self._histogram += np.bincount(bins, minlength=_FINE_BINS)
        self._sum += float(similarities.sum(dtype=np.float64))
        self._min = min(self._min, float(similarities.min()))
        self._max = max(self._max, float(similarities.max()))

    def _keep_best(self, hits: pa.Table, similarities: np.ndarray) -> None:
        floor = self._best[0][0] if len(self._best) == PREVIEW_ROWS else -np.inf
        best = np.flatnonzero(similarities > floor)
        best = best[np.argsort(-similarities[best], kind="stable")[:PREVIEW_ROWS]]
        columns = ("query_id", "query", "rank", "url", "caption", "similarity")
        rows = hits.select(columns).take(pa.array(best, pa.int64())).to_pylist()
        for row in rows:
            self._order -= 1  # ties: the earlier hit ranks first
            entry = (row["similarity"], self._order, row)
            if len(self._best) < PREVIEW_ROWS:
                heapq.heappush(self._best, entry)
            else:
                heapq.heappushpop(self._best, entry)

    def _similarity(self) -> dict[str, Any]:
        if self.hits == 0:
            return {}
        cumulative = np.cumsum(self._histogram)
        centre = (np.arange(_FINE_BINS) + 0.5) / _FINE_BINS * 2.0 - 1.0
        stats = {"min": self._min, "mean": self._sum / self.hits, "max": self._max}
        for q in QUANTILES:
            at = int(np.searchsorted(cumulative, q * self.hits))
            stats[f"p{round(q * 100)}"] = float(
                np.clip(centre[min(at, _FINE_BINS - 1)], self._min, self._max)
            )
        return {**stats, "histogram": self._plot_histogram()}

    def _plot_histogram(self) -> dict[str, list[float] | list[int]]:
        per_plot_bin = round(_PLOT_BIN_WIDTH / (2.0 / _FINE_BINS))
        counts = self._histogram.reshape(-1, per_plot_bin).sum(axis=1)
        used = np.flatnonzero(counts)
        lo, hi = int(used[0]), int(used[-1]) + 1
        edges = [round(-1.0 + i * _PLOT_BIN_WIDTH, 4) for i in range(lo, hi + 1)]
        return {"edges": edges, "counts": counts[lo:hi].tolist()}


def preview_markdown(preview: list[dict[str, Any]]) -> str:
    """The preview rows as a Markdown table (cells escaped, long text shortened)."""
    header = "| query | rank | similarity | caption | url |\n| --- | --- | --- | --- | --- |"
    lines = [header]
    for row in preview:
        query = row["query"] if row["query"] is not None else row["query_id"]
        cells = (query, str(row["rank"]), f"{row['similarity']:.3f}", row["caption"], row["url"])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _cell(value: str | None, limit: int = 80) -> str:
    text = "" if value is None else " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")
