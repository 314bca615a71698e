"""The release's parquet tables, streamed from our stored files and re-chunked by faiss id.

Reads embeddings files (``uid``, ``url``, ``embedding`` fixed_size_list<float32|float16, dim>)
and id_mapping files (``i``, ``uid``, ``url``, ``text``), each list in faiss-id order, one
batch at a time (a release of 10M 512-d vectors never sits in memory). Writes, for every block
of ``rows_per_file`` faiss ids, one file in each of

- ``data/``: ``id``, ``url``, ``embedding`` list<float32> (Fondant's variable list type);
- ``id_mapping/``: ``url``, ``i`` (Fondant's columns, first), ``uid``, ``text``;
- ``metadata/``: ``url``, ``caption``: what clip-retrieval's ``clip back`` reads.

so file ``train-0000k-of-0000n.parquet`` holds faiss ids ``[k*rows_per_file, ...)`` in all
three folders and the sorted concatenation of a folder is row i = faiss id i. Guarantees, else
``ReleaseError``: embeddings are non-null, one dimension, unit norm; the mapping's ``i`` runs
0..n-1; both inputs list the same uids in the same order. Output bytes depend only on the input
rows (no timestamps), so a rerun writes identical files.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.streamed_parquet import open_streamed

DATA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("embedding", pa.list_(pa.float32())),
    ]
)
ID_MAPPING_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string()),
        pa.field("i", pa.int64()),
        pa.field("uid", pa.string()),
        pa.field("text", pa.string()),
    ]
)
METADATA_SCHEMA = pa.schema([pa.field("url", pa.string()), pa.field("caption", pa.string())])

#: float16 vectors normalised before the cast are unit norm only to ~1e-3.
NORM_TOLERANCE = 1e-2
_BATCH_ROWS = 8192
_ROW_GROUP_ROWS = 10_000


class ReleaseError(ValueError):
    """The inputs cannot make a consistent release (the message says which file and why)."""


class ChunkedWriter:
    """Writes batches to ``folder/train-{k:05d}-of-{n:05d}.parquet``, ``rows_per_file`` each."""

    def __init__(self, folder: Path, schema: pa.Schema, total_rows: int, rows_per_file: int):
        self.folder, self.schema, self.rows_per_file = folder, schema, rows_per_file
        self.n_files = max(1, math.ceil(total_rows / rows_per_file))
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            if self._writer is None or self._in_file == self.rows_per_file:
                self._open_next()
            take = min(batch.num_rows, self.rows_per_file - self._in_file)
            self._writer.write_batch(batch.slice(0, take), row_group_size=_ROW_GROUP_ROWS)
            self._in_file += take
            batch = batch.slice(take)

    def close(self) -> list[Path]:
        if self._writer is not None:
            self._writer.close()
        return self.paths

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = self.folder / f"train-{len(self.paths):05d}-of-{self.n_files:05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.paths.append(path)
        self._in_file = 0


def count_rows(files: list[Path]) -> int:
    """Rows of all ``files``, from their parquet footers."""
    return sum(pq.read_metadata(f).num_rows for f in files)


def write_data(files: list[Path], folder: Path, total_rows: int, rows_per_file: int) -> dict:
    """Write ``data/`` from embeddings files; returns ``dim``, ``rows`` and ``uids_sha256``."""
    writer = ChunkedWriter(folder, DATA_SCHEMA, total_rows, rows_per_file)
    uids, rows, dim = hashlib.sha256(), 0, None
    for path, batch in _batches(files, ["uid", "url", "embedding"]):
        vectors = _vectors(path, batch.column("embedding"))
        if dim is None:
            dim = vectors.shape[1]
        if vectors.shape[1] != dim:
            raise ReleaseError(f"{path}: embeddings are {vectors.shape[1]}-d, earlier ones {dim}-d")
        _update(uids, batch.column("uid"))
        offsets = pa.array(np.arange(0, vectors.size + 1, dim, dtype=np.int32))
        embedding = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))
        writer.write(_batch(DATA_SCHEMA, batch.column("uid"), batch.column("url"), embedding))
        rows += batch.num_rows
    writer.close()
    return {"dim": dim, "rows": rows, "uids_sha256": uids.hexdigest()}


def write_mappings(files: list[Path], root: Path, total_rows: int, rows_per_file: int) -> dict:
    """Write ``id_mapping/`` and ``metadata/`` from id_mapping files; returns ``rows`` and
    ``uids_sha256`` (to compare with ``write_data``'s)."""
    mapping = ChunkedWriter(root / "id_mapping", ID_MAPPING_SCHEMA, total_rows, rows_per_file)
    metadata = ChunkedWriter(root / "metadata", METADATA_SCHEMA, total_rows, rows_per_file)
    uids, rows = hashlib.sha256(), 0
    for path, batch in _batches(files, ["i", "uid", "url", "text"]):
        ids = batch.column("i").to_numpy(zero_copy_only=False)
        if not np.array_equal(ids, np.arange(rows, rows + len(ids))):
            raise ReleaseError(f"{path}: faiss ids do not continue 0..n-1 at row {rows}")
        _update(uids, batch.column("uid"))
        url, text = batch.column("url"), batch.column("text")
        mapping.write(_batch(ID_MAPPING_SCHEMA, url, batch.column("i"), batch.column("uid"), text))
        metadata.write(_batch(METADATA_SCHEMA, url, text))
        rows += batch.num_rows
    mapping.close()
    metadata.close()
    return {"rows": rows, "uids_sha256": uids.hexdigest()}


def _batches(files: list[Path], columns: list[str]) -> Iterator[tuple[Path, pa.RecordBatch]]:
    for path in files:
        with open_streamed(path) as parquet:
            missing = set(columns) - set(parquet.schema_arrow.names)
            if missing:
                raise ReleaseError(f"{path}: missing columns {sorted(missing)}")
            for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
                yield path, batch


def _batch(schema: pa.Schema, *columns: pa.Array) -> pa.RecordBatch:
    """``columns`` in ``schema``'s order, cast to its types (e.g. large_string to string)."""
    return pa.record_batch(list(columns), names=schema.names).cast(schema)


def _vectors(path: Path, column: pa.Array) -> np.ndarray:
    """The batch's embeddings as a float32 (rows, dim) array, checked for nulls and unit norm."""
    if not pa.types.is_fixed_size_list(column.type):
        raise ReleaseError(f"{path}: embedding must be fixed_size_list, not {column.type}")
    if column.null_count or column.flatten().null_count:
        raise ReleaseError(f"{path}: null embeddings")
    dim = column.type.list_size
    vectors = column.flatten().to_numpy().astype(np.float32).reshape(-1, dim)
    norms = np.linalg.norm(vectors, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if bad.size:
        norm = norms[bad[0]]
        raise ReleaseError(f"{path}: an embedding has norm {norm:.4f}; rows must be L2-normalised")
    return vectors


def _update(digest: hashlib._Hash, uids: pa.Array) -> None:
    # One update per batch, same digest as one per uid: batch boundaries do not matter.
    if len(uids):
        digest.update(("\n".join(uids.cast(pa.string()).to_pylist()) + "\n").encode())
