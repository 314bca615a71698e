"""Stage results as Dagster metadata a person reads at a glance and the UI can plot.

Numbers stay numbers (the UI plots a numeric entry across partitions and materializations),
breakdowns become tables rather than JSON blobs, and long identities are shortened to one line
(the full identity stays in the stored files). Definitions of the figures live in the assets'
descriptions, not in every materialization.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from clip_assets.release.report import PartitionFigures, compact_png, png_data_uri, report_markdown
from clip_assets.retrieve.retrieval_summary import preview_markdown

_REASONS_SCHEMA = TableSchema(
    columns=[
        TableColumn("reason", "string"),
        TableColumn("rows", "int"),
        TableColumn("share", "float", description="of the partition's rows"),
    ]
)


def reasons_table(reasons: Mapping[str, int], rows: int) -> MetadataValue:
    """Failure reasons, most frequent first, as a table."""
    records = [
        TableRecord(
            {"reason": reason, "rows": count, "share": round(count / rows, 4) if rows else 0.0}
        )
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1])
    ]
    return MetadataValue.table(records, schema=_REASONS_SCHEMA)


def images_metadata(summary: Mapping[str, Any], uri: str) -> dict[str, Any]:
    """One images partition: counts, rates and its failure reasons (see download.summary)."""
    rows = summary["attempted"]
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        "ok": summary["ok"],
        "failed": rows - summary["ok"],
        "success_rate": round(summary["success_rate"], 4),
        "bytes": summary["bytes"],
        "stored_bytes": summary["stored_bytes"],
        "failure_reasons": reasons_table(summary["reasons"], rows),
        "path": MetadataValue.path(uri),
    }
    if "images_per_s" in summary:
        metadata["images_per_s"] = round(summary["images_per_s"], 1)
        metadata["elapsed_s"] = round(summary["elapsed_s"], 2)
    if "dns_lookups" in summary:  # the network figures the download returned
        for name in ("dns_lookups", "hosts_unreachable", "robots_txt_unreachable"):
            metadata[name] = summary[name]
        metadata["site_files_fetched"] = summary["site_files_fetched"]
        metadata["dns_cache_hit_rate"] = summary["dns_cache_hit_rate"]
        if summary["dns_failures"]:
            metadata["dns_failures"] = reasons_table(summary["dns_failures"], rows)
    if summary.get("top_failing_domains"):
        metadata["top_failing_domains"] = MetadataValue.md(
            "\n".join(f"- `{host}`: {count}" for host, count in summary["top_failing_domains"])
        )
    return metadata


def model_line(identity: Mapping[str, Any]) -> str:
    """``ViT-B-32 / laion2b_s34b_b79k, bf16, weights 1a2b3c4d``: the identity on one line."""
    name = identity.get("model") or identity.get("model_name") or "?"
    parts = [f"{name} / {identity.get('pretrained') or 'no tag'}"]
    if identity.get("precision"):
        parts.append(str(identity["precision"]))
    if identity.get("weights_sha256"):
        parts.append(f"weights {str(identity['weights_sha256'])[:8]}")
    return ", ".join(parts)


def index_metadata(
    infos: Mapping[str, Any], partitions: int, model: Mapping[str, Any], uri: str
) -> dict[str, Any]:
    """The index build: plottable recall, latency, size and build time (index_infos.json)."""
    k = infos.get("recall_k", 10)
    recall = infos.get("recall", {})
    latency = infos.get("latency_ms", {})
    metadata: dict[str, Any] = {
        "vectors": infos.get("nb vectors"),
        "partitions": partitions,
        "index_key": infos.get("index_key") or "",
        "mode": infos.get("mode") or "",
        f"recall@{k}_image": _maybe_round(recall.get("image", {}).get(f"recall@{k}")),
        f"recall@{k}_text": _maybe_round(recall.get("text", {}).get(f"recall@{k}")),
        "latency_p50_ms": _maybe_round(latency.get("p50")),
        "latency_p99_ms": _maybe_round(latency.get("p99")),
        "index_bytes": infos.get("size in bytes"),
        "build_s": _maybe_round(infos.get("timings_s", {}).get("total"), 1),
        "build_cpu_s": _maybe_round(sum(infos.get("cpu_s", {}).values()) or None, 1),
        "build_peak_rss_mb": _maybe_round((infos.get("peak_rss_bytes") or 0) / 2**20 or None, 1),
        "search_params": infos.get("index_param") or "",
        "model": model_line(model),
        "path": MetadataValue.path(uri),
        **_left_out(infos.get("partitions", {}).get("left_out", {})),
    }
    return {name: value for name, value in metadata.items() if value is not None}


#: The similarity figures of a retrieval summary that become plottable metadata entries.
_QUANTILE_NAMES = ("min", "p5", "p25", "p50", "mean", "p75", "p95", "max")
_HISTOGRAM_SCHEMA = TableSchema(
    columns=[
        TableColumn("from", "float", description="similarity, inclusive"),
        TableColumn("to", "float", description="similarity, exclusive"),
        TableColumn("hits", "int"),
    ]
)


def retrieval_metadata(summary: Mapping[str, Any], uri: str) -> dict[str, Any]:
    """One retrieval (see retrieve.retrieval_summary): plottable counts and similarity
    quantiles, the similarity histogram and failure reasons as tables, the best hits as a
    Markdown table, and the image download's counts when it ran."""
    queries, similarity = summary["queries"], summary["similarity"]
    histogram = similarity.get("histogram", {"edges": [], "counts": []})
    bins = zip(histogram["edges"], histogram["edges"][1:], histogram["counts"], strict=False)
    metadata: dict[str, Any] = {
        "dagster/row_count": summary["hits"],
        "queries": queries,
        "queries_failed": summary["queries_failed"],
        "queries_without_hits": summary["queries_without_hits"],
        "hits_per_query": round(summary["hits_per_query"], 3),
        **{f"dropped_{name}": count for name, count in sorted(summary["dropped"].items())},
        **{
            f"similarity_{name}": round(similarity[name], 4)
            for name in _QUANTILE_NAMES
            if name in similarity
        },
        "similarity_histogram": MetadataValue.table(
            [TableRecord({"from": lo, "to": hi, "hits": n}) for lo, hi, n in bins],
            schema=_HISTOGRAM_SCHEMA,
        ),
        "failure_reasons": reasons_table(summary["failure_reasons"], queries),
        "top_hits": MetadataValue.md(preview_markdown(summary["preview"])),
        "queries_per_s": round(summary["queries_per_s"], 1),
        "elapsed_s": round(summary["elapsed_s"], 2),
        "path": MetadataValue.path(uri),
    }
    if "images" in summary:
        images = summary["images"]
        metadata["images_ok"] = images["ok"]
        metadata["images_success_rate"] = round(images["success_rate"], 4)
        metadata["image_failure_reasons"] = reasons_table(images["reasons"], images["attempted"])
    return metadata


def _left_out(left_out: Mapping[str, list[str]]) -> dict[str, Any]:
    """Counts of the partitions the index left out, and their keys when there are any."""
    failed, pending = left_out.get("failed", []), left_out.get("not_materialized", [])
    metadata: dict[str, Any] = {"left_out_failed": len(failed), "left_out_pending": len(pending)}
    if failed or pending:
        metadata["left_out_partitions"] = MetadataValue.json(
            {"failed": failed, "not_materialized": pending}
        )
    return metadata


def report_metadata(
    dataset: str, figures: Sequence[PartitionFigures], infos: Mapping[str, Any], png: bytes
) -> MetadataValue:
    """The dataset's report picture (``release.report``) as Markdown the UI renders: the
    picture inline as a compact PNG ``data:`` URI, then the figures it is drawn from."""
    uri = png_data_uri(compact_png(png))
    return MetadataValue.md(report_markdown(dataset, figures, dict(infos), uri))


def _maybe_round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
