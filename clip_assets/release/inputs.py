"""What a release is made of, gathered from the stored partitions: no Dagster, no storage class.

``ReleaseInputs`` is everything the release folder and its card need. The gatherers read only
the columns they need through a ``read_columns(path, columns)`` callable, so the asset passes
its storage's reader and tests pass ``pyarrow.parquet.read_table``; ``code_version`` asks git
which commit built the release.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clip_assets import __version__
from clip_assets.download.summary import stored_summary
from clip_assets.release.report import PartitionFigures, partition_figures

#: The download settings that shape the released images (the card shows them).
IMAGE_SETTING_FIELDS = (
    "image_size",
    "resize_mode",
    "resize_only_if_bigger",
    "encode_format",
    "encode_quality",
)
#: What the counts are read from when a footer does not hold them.
STATUS_COLUMNS = ["status", "reason"]
#: ``read_columns(path, columns)``: one stored parquet file, only those columns.
ReadColumns = Callable[[str, list[str]], pa.Table]
#: ``read_footer(path)``: one stored parquet file's key-value metadata (no rows read).
ReadFooter = Callable[[str], dict[bytes, bytes] | None]


@dataclass(frozen=True)
class ReleaseInputs:
    """Everything a release is made of; the dicts are rendered in the card as given.

    ``model``: ``model_name``, ``pretrained``, ``weights_sha256``, ``precision``, ``device``,
    ``preprocessing`` (the open_clip transform, as text or a dict).
    ``download``: ``attempted``, ``ok``, ``success_rate``, ``by_status`` (status -> rows),
    ``top_reasons`` (reason -> rows), ``resize`` (e.g. ``{"mode": "shortest_side", "size": 256}``).
    ``partitions``: each released partition's figures (``report.partition_figures``), in
    partition order; with them the card shows the report picture, partitions under
    ``success_floor`` in red.
    """

    dataset: str
    source_repo: str | None
    source_revision: str | None
    source_files: list[str]
    index_dir: Path
    embeddings: list[Path]
    id_mapping: list[Path]
    model: dict[str, Any]
    download: dict[str, Any]
    code_version: str
    license: str = "cc-by-4.0"
    #: The repo the card points users to (``org/name``); the card says ``<repo_id>`` without it.
    repo_id: str | None = None
    partitions: tuple[PartitionFigures, ...] = ()
    success_floor: float | None = None


def code_version() -> str:
    """Package version plus the git commit of the checkout, when there is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return __version__
    return f"{__version__}+g{commit}"


def download_counts(images_files: Iterable[str], read_columns: ReadColumns) -> dict[str, Any]:
    """Status and reason counts over the images files of the released partitions."""
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for path in images_files:
        table = read_columns(path, STATUS_COLUMNS)
        statuses.update(table.column("status").to_pylist())
        reasons.update(r for r in table.column("reason").to_pylist() if r)
    attempted = sum(statuses.values())
    return {
        "attempted": attempted,
        "ok": statuses.get("ok", 0),
        "success_rate": round(statuses.get("ok", 0) / attempted, 4) if attempted else 0.0,
        "by_status": dict(sorted(statuses.items())),
        "top_reasons": dict(reasons.most_common(10)),
    }


def released_partitions(
    images_files: dict[str, str], read_footer: ReadFooter, read_columns: ReadColumns
) -> tuple[PartitionFigures, ...]:
    """Each partition's figures (``partition -> images file``, in partition order) from the
    counts its file's footer holds; a file written before footers held them is counted from
    its ``status`` and ``reason`` columns (no download time then)."""
    figures = []
    for partition, path in images_files.items():
        summary = stored_summary(read_footer(path)) or _counted(read_columns(path, STATUS_COLUMNS))
        figures.append(partition_figures(partition, summary))
    return tuple(figures)


def _counted(table: pa.Table) -> dict[str, Any]:
    statuses = table.column("status").to_pylist()
    ok = statuses.count("ok")
    return {
        "attempted": len(statuses),
        "ok": ok,
        "success_rate": ok / len(statuses) if statuses else 0.0,
        "reasons": Counter(r for r in table.column("reason").to_pylist() if r),
    }


def source_lineage(
    metadata_files: Iterable[str], read_columns: ReadColumns
) -> tuple[list[str], list[str]]:
    """The source files and revisions the released partitions were read from."""
    files: set[str] = set()
    revisions: set[str] = set()
    for path in metadata_files:
        table = read_columns(path, ["source_file", "source_revision"])
        files.update(pc.unique(table.column("source_file")).to_pylist())
        revisions.update(r for r in pc.unique(table.column("source_revision")).to_pylist() if r)
    return sorted(files), sorted(revisions)


def image_settings(recorded: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """How the released images were resized and encoded, from the settings each images file
    records (``DownloadSettings.file_metadata``): one dict when every file agrees, else
    ``{"mixed": [...]}``; files older than the record are left out."""
    distinct: dict[str, dict[str, Any]] = {}
    for settings in recorded:
        if settings is None:
            continue
        shaped = {name: settings.get(name) for name in IMAGE_SETTING_FIELDS}
        distinct[json.dumps(shaped, sort_keys=True)] = shaped
    if len(distinct) > 1:
        return {"mixed": list(distinct.values())}
    return next(iter(distinct.values()), {})
