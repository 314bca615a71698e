"""The optional second step: download every hit's image through the images stage.

``download_hits_to_file`` reads a RETRIEVAL_SCHEMA file and writes a RETRIEVED_IMAGES_SCHEMA
file: every hit, in order, with the images stage's columns for its url (``status``,
``reason``, ``image`` bytes, sizes, ...), so the result is a training set ready to use and
every hit is accounted for exactly once, whatever its server does. The download itself is
``download_shard_to_file`` with the caller's ``DownloadSettings`` (the same checks, retries,
opt-out handling, resizing and reason vocabulary as the pipeline's images), run over slices of
``rows_per_slice`` hits; each slice's images go to a temporary file beside ``path`` and are
joined with their hits a row group at a time, so memory holds one row group of images, not
the dataset. The output appears only when complete; the temporary files are always removed.
Returns ``clip_assets.download.summary.summarize_file`` of the output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import OnProgress, download_shard_to_file
from clip_assets.download.summary import summarize_file
from clip_assets.retrieve.table_file import table_file
from clip_assets.schemas import IMAGES_SCHEMA, RETRIEVAL_SCHEMA, RETRIEVED_IMAGES_SCHEMA
from clip_assets.streamed_parquet import open_streamed

#: Hits per call of the images stage: the pipeline's partition size, which it is tuned for.
ROWS_PER_SLICE = 50_000
_IMAGE_COLUMNS = [f.name for f in IMAGES_SCHEMA if f.name not in ("uid", "url")]
_ROW_GROUP_ROWS = 1024


def download_hits_to_file(
    hits_path: str | Path,
    settings: DownloadSettings,
    path: str | Path,
    *,
    on_progress: OnProgress | None = None,
    rows_per_slice: int = ROWS_PER_SLICE,
) -> dict:
    """Downloads the image of every hit in ``hits_path`` into ``path`` (see the module doc)."""
    path = Path(path)
    with (
        open_streamed(hits_path) as hits,
        table_file(path, RETRIEVED_IMAGES_SCHEMA) as write,
    ):
        if hits.schema_arrow.names != RETRIEVAL_SCHEMA.names:
            raise ValueError(
                f"{hits_path} is not a retrieval file: columns {hits.schema_arrow.names}"
            )
        start = 0
        for batch in hits.iter_batches(batch_size=rows_per_slice):
            slice_hits = pa.Table.from_batches([batch]).cast(RETRIEVAL_SCHEMA)
            for table in _downloaded(slice_hits, start, settings, path.parent, on_progress):
                write(table)
            start += slice_hits.num_rows
    return summarize_file(path)


def _downloaded(
    hits: pa.Table,
    start: int,
    settings: DownloadSettings,
    folder: Path,
    on_progress: OnProgress | None,
) -> Iterator[pa.Table]:
    """``hits`` joined with their images, a row group at a time."""
    # The images stage wants a non-null uid per row; the hit's position serves (a Fondant
    # index has no uids), and the hits' own uid column is what the output keeps.
    positions = pa.array([str(n) for n in range(start, start + hits.num_rows)], pa.string())
    metadata = pa.table({"uid": positions, "url": hits["url"]})
    with tempfile.TemporaryDirectory(prefix=".retrieved-images-", dir=folder) as tmp:
        images_path = Path(tmp) / "images.parquet"
        download_shard_to_file(
            metadata, settings, images_path, on_progress=on_progress, row_group_rows=_ROW_GROUP_ROWS
        )
        offset = 0
        with open_streamed(images_path) as images:
            for batch in images.iter_batches(batch_size=_ROW_GROUP_ROWS, columns=_IMAGE_COLUMNS):
                rows = hits.slice(offset, batch.num_rows)
                columns = [*rows.columns, *batch.columns]
                yield pa.Table.from_arrays(columns, schema=RETRIEVED_IMAGES_SCHEMA)
                offset += batch.num_rows
        if offset != hits.num_rows:
            raise RuntimeError(f"the images stage returned {offset} rows for {hits.num_rows} hits")
