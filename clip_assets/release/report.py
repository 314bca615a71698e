"""A dataset's report at a glance: one picture and the Markdown around it.

Reads: each partition's figures (rows, ok, failed, success rate, images/s, failure reasons),
which ``partition_figures`` takes from the summary an images file's footer holds, and the
index's ``index_infos.json`` (its ``tuning.curve``: recall@k and latency at each search
setting tried).
Writes nothing: ``render_png`` returns the PNG bytes (matplotlib's Agg backend, so no display is
needed) of four panels — success rate per partition, throughput per partition, failure reasons,
and the recall/latency curve with the chosen setting marked; ``report_markdown`` returns the
Markdown that shows it, given where the picture is (a file beside the card, or
``png_data_uri(compact_png(png))`` for a Dagster Markdown metadata value: the same picture in a
64-colour palette, a few times smaller, so the event log row stays small). Guarantees: the same
inputs give the same bytes (no timestamps or version strings in the PNG).
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pyarrow.parquet as pq
from PIL import Image

matplotlib.use("Agg")  # before pyplot: render to memory, never look for a display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from clip_assets.download.summary import stored_summary, summarize_file

#: Partitions shown by name on an axis; beyond this they are numbered in partition order.
NAMED_PARTITIONS = 16
TOP_REASONS = 10
#: Bar colours: green for a healthy partition, red only for one under the success floor.
OK_COLOUR, LOW_COLOUR = "#2e7d32", "#c62828"
_SPEED, _REASON, _CHOSEN = "#1565c0", "#6d4c41", "#ef6c00"


@dataclass(frozen=True)
class PartitionFigures:
    """One images partition summed up; ``images_per_s`` is None when the file records no
    download time (files written before it did)."""

    partition: str
    rows: int
    ok: int
    failed: int
    success_rate: float
    images_per_s: float | None
    reasons: dict[str, int]


def partition_figures(partition: str, summary: dict[str, Any]) -> PartitionFigures:
    """One partition's figures from its images file's summary: the counts its footer holds
    (``download.summary.stored_summary`` of ``read_parquet_metadata``, no rows read) or, for a
    file written before footers held them, ``summarize_file``."""
    return PartitionFigures(
        partition=partition,
        rows=summary["attempted"],
        ok=summary["ok"],
        failed=summary["attempted"] - summary["ok"],
        success_rate=summary["success_rate"],
        images_per_s=summary.get("images_per_s"),
        reasons=dict(summary["reasons"]),
    )


def read_partition_figures(partition: str, images_file: Path) -> PartitionFigures:
    """``partition_figures`` of a local images file: its footer, else its rows."""
    stored = stored_summary(pq.read_metadata(images_file).metadata)
    return partition_figures(partition, stored or summarize_file(images_file))


def total_reasons(figures: Sequence[PartitionFigures]) -> list[tuple[str, int]]:
    """Failure reasons over all partitions, most rows first (ties by name)."""
    counts: Counter[str] = Counter()
    for partition in figures:
        counts.update(partition.reasons)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def render_png(
    dataset: str,
    figures: Sequence[PartitionFigures],
    infos: dict[str, Any],
    *,
    success_floor: float | None = None,
) -> bytes:
    """The four-panel report as PNG bytes; bars under ``success_floor`` are drawn red."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=80)
    try:
        fig.suptitle(
            f"{dataset}: {sum(p.rows for p in figures):,} rows in {len(figures)} partitions"
        )
        _success_panel(axes[0][0], figures, success_floor)
        _throughput_panel(axes[0][1], figures)
        _reasons_panel(axes[1][0], figures)
        _recall_panel(axes[1][1], infos)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def compact_png(png: bytes, colours: int = 64) -> bytes:
    """``png`` with its pixels in a palette of ``colours`` (median cut): the plot's flat colours
    come through exactly, the anti-aliased edges approximately, in a fraction of the bytes."""
    with Image.open(io.BytesIO(png)) as picture:
        palette = picture.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """``png`` as a ``data:`` URI, for Markdown that must carry its picture inline."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def report_markdown(
    dataset: str, figures: Sequence[PartitionFigures], infos: dict[str, Any], image: str
) -> str:
    """Markdown showing the picture at ``image`` with the figures it is drawn from."""
    rows = sum(p.rows for p in figures)
    ok = sum(p.ok for p in figures)
    rate = f"{100 * ok / rows:.1f}%" if rows else "n/a"
    lines = [
        f"![{dataset} report: success rate and throughput per partition, failure reasons, "
        f"recall against latency]({image})",
        "",
        f"{ok:,} of {rows:,} images downloaded ({rate}) over {len(figures)} partitions.",
        "",
        "| partition | rows | ok | failed | success | images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in figures:
        speed = "n/a" if p.images_per_s is None else f"{p.images_per_s:.1f}"
        lines.append(
            f"| {p.partition} | {p.rows:,} | {p.ok:,} | {p.failed:,} | "
            f"{100 * p.success_rate:.1f}% | {speed} |"
        )
    reasons = total_reasons(figures)[:TOP_REASONS]
    if reasons:
        lines += ["", "| failure reason | rows |", "|---|---:|"]
        lines += [f"| {reason} | {count:,} |" for reason, count in reasons]
    curve = _curve(infos)
    if curve:
        k = infos.get("tuning", {}).get("k", 10)
        lines += ["", f"| search setting | recall@{k} | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
        for point in curve:
            lines.append(
                f"| {_params(point['params'])} | {point['recall']:.3f} | "
                f"{_ms(point['p50_ms'])} | {_ms(point['p99_ms'])} |"
            )
    return "\n".join(lines) + "\n"


def _positions(axis: Axes, figures: Sequence[PartitionFigures]) -> list[int]:
    positions = list(range(len(figures)))
    if len(figures) <= NAMED_PARTITIONS:
        axis.set_xticks(positions, [p.partition for p in figures], rotation=45, ha="right")
    else:
        axis.set_xlabel("partition (in partition order)")
    return positions


def _success_panel(axis: Axes, figures: Sequence[PartitionFigures], floor: float | None) -> None:
    rates = [100 * p.success_rate for p in figures]
    low = [floor is not None and p.success_rate < floor for p in figures]
    colours = [LOW_COLOUR if is_low else OK_COLOUR for is_low in low]
    axis.bar(_positions(axis, figures), rates, color=colours)
    if floor is not None:
        axis.axhline(100 * floor, color="black", linestyle="--", linewidth=1, label="success floor")
        axis.legend(loc="lower right")
    axis.set_ylim(0, 100)
    axis.set_ylabel("success rate (%)")
    axis.set_title("Downloaded per partition")


def _throughput_panel(axis: Axes, figures: Sequence[PartitionFigures]) -> None:
    speeds = [p.images_per_s or 0.0 for p in figures]
    axis.bar(_positions(axis, figures), speeds, color=_SPEED)
    axis.set_ylabel("images/s")
    axis.set_title("Download throughput per partition")
    if all(p.images_per_s is None for p in figures):
        axis.text(0.5, 0.5, "no download times recorded", ha="center", transform=axis.transAxes)


def _reasons_panel(axis: Axes, figures: Sequence[PartitionFigures]) -> None:
    reasons = total_reasons(figures)[:TOP_REASONS]
    axis.set_title("Failure reasons (all partitions)")
    if not reasons:
        axis.text(0.5, 0.5, "every image downloaded", ha="center", transform=axis.transAxes)
        axis.set_axis_off()
        return
    names = [name for name, _ in reversed(reasons)]
    axis.barh(names, [count for _, count in reversed(reasons)], color=_REASON)
    axis.set_xlabel("rows")


def _recall_panel(axis: Axes, infos: dict[str, Any]) -> None:
    curve = _curve(infos)
    k = infos.get("tuning", {}).get("k", 10)
    axis.set_title(f"Index {infos.get('index_key', '')}: recall@{k} against latency")
    if not curve:
        axis.text(0.5, 0.5, "no tuning curve recorded", ha="center", transform=axis.transAxes)
        axis.set_axis_off()
        return
    latencies = [p["p50_ms"] or 0.0 for p in curve]
    axis.plot(latencies, [p["recall"] for p in curve], marker="o", color=_SPEED)
    chosen = [p for p in curve if p["params"] == infos.get("search_params")]
    for point in chosen:
        axis.plot(point["p50_ms"] or 0.0, point["recall"], marker="*", markersize=16, color=_CHOSEN)
        axis.annotate(
            f"chosen: {_params(point['params'])}",
            (point["p50_ms"] or 0.0, point["recall"]),
            textcoords="offset points",
            xytext=(8, -14),
        )
    target = infos.get("tuning", {}).get("target")
    if target is not None:
        axis.axhline(target, color=_CHOSEN, linestyle="--", linewidth=1, label="recall target")
        axis.legend(loc="lower right")
    axis.set_xlabel("p50 latency per query (ms)")
    axis.set_ylabel(f"recall@{k} (worst query set)")
    axis.set_ylim(min(0.5, *(p["recall"] for p in curve)) - 0.02, 1.01)


def _curve(infos: dict[str, Any]) -> list[dict[str, Any]]:
    """The tuning curve as ``params``, ``recall``, ``p50_ms``, ``p99_ms`` points."""
    tuning = infos.get("tuning") or {}
    key = f"recall@{tuning.get('k', 10)}"
    return [
        {
            "params": point.get("params") or {},
            "recall": float(point[key]),
            "p50_ms": point.get("p50_ms"),
            "p99_ms": point.get("p99_ms"),
        }
        for point in tuning.get("curve") or []
        if key in point
    ]


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "exact (no parameters)"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
