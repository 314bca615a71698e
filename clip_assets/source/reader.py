"""Reading one slice of a source file as normalised metadata rows (METADATA_SCHEMA)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clip_assets.registry import DatasetSpec
from clip_assets.schemas import METADATA_SCHEMA
from clip_assets.source.slices import ShardSlice


def _read_rows(path: Path, start: int, stop: int, columns: list[str]) -> pa.Table:
    """Rows ``[start, stop)`` of a parquet file, reading only the row groups that hold them."""
    with pq.ParquetFile(path) as parquet:
        if stop > parquet.metadata.num_rows:
            raise ValueError(
                f"{path} has {parquet.metadata.num_rows} rows; the slice wants rows up to {stop}: "
                "the file changed since it was listed"
            )
        groups, first_row, offset = [], None, 0
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if offset < stop and offset + rows > start:
                groups.append(index)
                first_row = offset if first_row is None else first_row
            offset += rows
        if not groups:
            return parquet.schema_arrow.empty_table().select(columns)
        table = parquet.read_row_groups(groups, columns=columns)
        return table.slice(start - first_row, stop - start)


def _column_or_null(table: pa.Table, name: str | None, type_: pa.DataType) -> pa.Array:
    if name is None or name not in table.column_names:
        return pa.nulls(table.num_rows, type_)
    column = table.column(name).combine_chunks()
    return column.cast(type_) if column.type != type_ else column


def _uids(urls: pa.Array, texts: pa.Array) -> pa.Array:
    # DataComp's uid: md5 of caption + url, hex.
    return pa.array(
        [
            hashlib.md5(((text or "") + (url or "")).encode()).hexdigest()
            for text, url in zip(texts.to_pylist(), urls.to_pylist(), strict=True)
        ],
        pa.string(),
    )


def read_slice(spec: DatasetSpec, piece: ShardSlice, local_file: Path) -> pa.Table:
    """The slice's rows renamed to our schema, with the source file, revision and row recorded.

    Reads: the configured url/caption/uid/sha256 columns (and DataComp's size and face box
    columns when present). Guarantees: one output row per source row, in source order; a
    missing url column is an error naming the columns the file has.
    """
    available = pq.read_schema(local_file).names
    if spec.url_column not in available:
        raise KeyError(
            f"{spec.name}: {piece.file} has no url column {spec.url_column!r}; "
            f"columns: {', '.join(available)} (set url_column in the dataset registry)"
        )
    wanted = [
        spec.url_column,
        spec.caption_column,
        spec.uid_column,
        spec.sha256_column,
        "original_width",
        "original_height",
        "face_bboxes",
    ]
    columns = list(dict.fromkeys(c for c in wanted if c and c in available))
    rows = _read_rows(local_file, piece.start, piece.stop, columns)
    urls = _column_or_null(rows, spec.url_column, pa.string())
    texts = _column_or_null(rows, spec.caption_column, pa.string())
    if spec.uid_column and spec.uid_column in rows.column_names:
        uids = _column_or_null(rows, spec.uid_column, pa.string())
        uids = pc.if_else(pc.is_null(uids), _uids(urls, texts), uids)
    else:
        uids = _uids(urls, texts)
    sha = _column_or_null(rows, spec.sha256_column, pa.string())
    n = rows.num_rows
    return pa.table(
        {
            "uid": uids,
            "url": urls,
            "text": texts,
            "sha256": pc.utf8_lower(sha),
            "original_width": _column_or_null(rows, "original_width", pa.int64()),
            "original_height": _column_or_null(rows, "original_height", pa.int64()),
            "face_bboxes": _column_or_null(
                rows, "face_bboxes", METADATA_SCHEMA.field("face_bboxes").type
            ),
            "source_file": pa.array([piece.file] * n, pa.string()),
            "source_revision": pa.array([piece.revision] * n, pa.string()),
            "source_row": pa.array(range(piece.start, piece.start + n), pa.int64()),
        },
        schema=METADATA_SCHEMA,
    )
