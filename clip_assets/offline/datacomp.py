"""Parquet shards with DataComp's exact schema, for the demo and the tests.

DataComp names each file by a 32-hex hash and fills ``uid`` with md5(caption + url); the
rest of the columns carry the crawl-time facts the images stage checks against (``sha256`` of
the bytes served, original size) or may use (``face_bboxes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DATACOMP_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string()),
        pa.field("url", pa.string()),
        pa.field("text", pa.string()),
        pa.field("original_width", pa.int64()),
        pa.field("original_height", pa.int64()),
        pa.field("clip_b32_similarity_score", pa.float32()),
        pa.field("clip_l14_similarity_score", pa.float32()),
        pa.field("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        pa.field("sha256", pa.string()),
    ]
)


@dataclass(frozen=True)
class SampleRow:
    """One source row: where the image is and what the crawl recorded of it."""

    url: str | None
    text: str
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    face_bboxes: tuple[tuple[float, float, float, float], ...] = ()


def datacomp_uid(text: str, url: str | None) -> str:
    """DataComp's uid: md5 of caption + url, as 32 hex digits."""
    return hashlib.md5((text + (url or "")).encode()).hexdigest()


def shard_name(rows: Sequence[SampleRow]) -> str:
    """A DataComp-style file name: 32 hex digits derived from the rows, plus ``.parquet``."""
    digest = hashlib.md5("\n".join(f"{r.url}|{r.text}" for r in rows).encode()).hexdigest()
    return f"{digest}.parquet"


def write_datacomp_shard(folder: Path, rows: Sequence[SampleRow], row_group_size: int = 64) -> Path:
    """Writes ``rows`` as one DataComp-schema parquet file in ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "uid": [datacomp_uid(r.text, r.url) for r in rows],
            "url": [r.url for r in rows],
            "text": [r.text for r in rows],
            "original_width": [r.width for r in rows],
            "original_height": [r.height for r in rows],
            "clip_b32_similarity_score": [0.3] * len(rows),
            "clip_l14_similarity_score": [0.3] * len(rows),
            "face_bboxes": [[list(box) for box in r.face_bboxes] for r in rows],
            "sha256": [r.sha256 for r in rows],
        },
        schema=DATACOMP_SCHEMA,
    )
    path = folder / shard_name(rows)
    partial = path.with_suffix(".tmp")
    pq.write_table(table, partial, row_group_size=row_group_size)
    partial.replace(path)
    return path
