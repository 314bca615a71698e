"""Helpers for the images-stage tests: metadata tables, and one-call downloads that return
the images table (wrappers over the stage's file-writing entry points, which are the only ones
the package offers)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import (
    OnProgress,
    download_shard_to_file,
    retry_failed_to_file,
)
from clip_assets.download.writer import transient_failures
from clip_assets.schemas import METADATA_SCHEMA


def metadata(
    urls: Sequence[str | None],
    sha256: Sequence[str | None] | None = None,
    face_bboxes: Sequence[list[list[float]] | None] | None = None,
) -> pa.Table:
    """A METADATA_SCHEMA table with one row per URL."""
    n = len(urls)
    return pa.table(
        {
            "uid": [hashlib.md5(f"{i}{u}".encode()).hexdigest() for i, u in enumerate(urls)],
            "url": list(urls),
            "text": [f"caption {i}" for i in range(n)],
            "sha256": list(sha256) if sha256 is not None else [None] * n,
            "original_width": [None] * n,
            "original_height": [None] * n,
            "face_bboxes": list(face_bboxes) if face_bboxes is not None else [None] * n,
            "source_file": ["shard.parquet"] * n,
            "source_revision": [None] * n,
            "source_row": list(range(n)),
        },
        schema=METADATA_SCHEMA,
    )


def download_shard(
    meta: pa.Table, settings: DownloadSettings, *, on_progress: OnProgress | None = None
) -> pa.Table:
    """``download_shard_to_file`` into a temporary file, read back as a table."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.parquet"
        download_shard_to_file(meta, settings, path, on_progress=on_progress)
        return pq.read_table(path)


def retry_failed(previous: pa.Table, meta: pa.Table, settings: DownloadSettings) -> pa.Table:
    """``retry_failed_to_file`` on ``previous`` written to a file; ``previous`` itself when
    nothing is transient."""
    if not transient_failures(previous, meta):
        return previous
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.parquet"
        pq.write_table(previous, path)
        retry_failed_to_file(path, meta, settings, path)
        return pq.read_table(path)


def download_one(url: str | None, settings: DownloadSettings, **columns) -> dict:
    """Downloads a single URL; returns its images row as a dict."""
    wrapped = {k: [v] for k, v in columns.items()}
    return download_shard(metadata([url], **wrapped), settings).to_pylist()[0]
