"""The whole retrieval flow the CLI and the asset run: hits, then their Fondant view and images.

``build_retrieval_dataset`` reads a ``QuerySet`` and an open ``ClipSearcher`` and writes, to
the local paths of a ``RetrievalOutputs``: the hits (``retrieve_to_file``), optionally their
Fondant view (``write_fondant``) and optionally a training set with every hit's image
(``download_hits_to_file`` with the caller's ``DownloadSettings``). Each file appears only when
complete. Returns the retrieval summary, with ``fondant_rows`` and ``images`` (the images
stage's summary) when those were written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import OnProgress
from clip_assets.retrieve.fondant_view import write_fondant
from clip_assets.retrieve.query_set import QuerySet
from clip_assets.retrieve.retrieval import OnBatch, retrieve_to_file
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.retrieve.retrieved_images import download_hits_to_file
from clip_assets.search import ClipSearcher


@dataclass(frozen=True)
class RetrievalOutputs:
    """Where each output goes; ``None`` skips that step."""

    hits: Path
    fondant: Path | None = None
    images: Path | None = None


def build_retrieval_dataset(
    searcher: ClipSearcher,
    queries: QuerySet,
    settings: RetrievalSettings,
    outputs: RetrievalOutputs,
    *,
    download: DownloadSettings | None = None,
    on_batch: OnBatch | None = None,
    on_download: OnProgress | None = None,
) -> dict[str, Any]:
    """Writes ``outputs`` for ``queries`` (see the module doc)."""
    summary = retrieve_to_file(searcher, queries, settings, outputs.hits, on_batch=on_batch)
    if outputs.fondant is not None:
        summary["fondant_rows"] = write_fondant(outputs.hits, outputs.fondant)
    if outputs.images is not None:
        summary["images"] = download_hits_to_file(
            outputs.hits, download or DownloadSettings(), outputs.images, on_progress=on_download
        )
    return summary
