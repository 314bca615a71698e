"""Helpers for the images-stage tests: metadata tables and one-call downloads."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import download_shard
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


def download_one(url: str | None, settings: DownloadSettings, **columns) -> dict:
    """Downloads a single URL; returns its images row as a dict."""
    wrapped = {k: [v] for k, v in columns.items()}
    return download_shard(metadata([url], **wrapped), settings).to_pylist()[0]
