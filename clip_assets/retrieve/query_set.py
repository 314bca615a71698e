"""Read a query set, a batch at a time: prompts, embeddings, image URLs, image files or bytes.

Reads: a parquet or CSV file, a folder of them (a Fondant dataset is a folder of
``part.N.parquet``), or a ``.npy`` array of embeddings. Each row is one query: an id column
(``query_id``, ``prompt_id`` or ``id``; row numbers when there is none) and one query column,
found by name unless given:

- ``text``: ``prompt``, ``query``, ``text``, ``caption`` (what Fondant's prompt components use);
- ``embedding``: ``embedding``, ``embeddings``, ``vector`` (a list of floats; parquet only);
- ``image``: ``image`` (encoded bytes, as Fondant's ``download_images`` writes them);
- ``image_url``: ``image_url``, ``url``;
- ``image_file``: ``image_path``, ``image_file``, ``path``, ``file`` (relative paths are read
  from the query set's folder).

When several are present the first kind in that order wins. Guarantees: batches come in file
order and hold at most ``batch_size`` rows, so a million prompts never sit in memory at once;
ids are strings, unique across the set (a repeated, empty or missing id is a
``QuerySetError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyarrow import csv as arrow_csv

#: Query kind -> column names that hold it, in order of preference; kinds in priority order.
QUERY_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("prompt", "query", "text", "caption"),
    "embedding": ("embedding", "embeddings", "vector"),
    "image": ("image",),
    "image_url": ("image_url", "url"),
    "image_file": ("image_path", "image_file", "path", "file"),
}
ID_COLUMNS = ("query_id", "prompt_id", "id")
_FORMATS = {".parquet": "parquet", ".csv": "csv"}

#: A batch's queries: prompts, URLs, paths or bytes as a list; embeddings as an Arrow list array.
QueryValues = list[Any] | pa.Array | pa.ChunkedArray


class QuerySetError(ValueError):
    """The query set cannot be read as one: the message says what was found and expected."""


@dataclass(frozen=True)
class QueryBatch:
    """Consecutive queries: ``ids``, ``labels`` (the ``query`` column of the output: the
    prompt, URL or path; ``None`` for embeddings and bytes) and ``values``: a list of
    prompts, URLs, paths or bytes, or for embeddings an Arrow list array."""

    kind: str
    ids: list[str]
    labels: list[str | None]
    values: QueryValues
    folder: Path

    def __len__(self) -> int:
        return len(self.ids)


class QuerySet:
    """The queries of ``path``; ``query_column``/``kind``/``id_column`` override detection."""

    def __init__(
        self,
        path: str | Path,
        *,
        query_column: str | None = None,
        kind: str | None = None,
        id_column: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise QuerySetError(f"query set {self.path} does not exist")
        self.folder = self.path if self.path.is_dir() else self.path.parent
        self._array = np.load(self.path, mmap_mode="r") if self.path.suffix == ".npy" else None
        self._dataset = None if self._array is not None else _open_dataset(self.path)
        names = self._dataset.schema.names if self._dataset is not None else []
        self.query_column, self.kind = _query_column(names, self._schema, query_column, kind)
        self.id_column = _id_column(names, id_column)

    @property
    def _schema(self) -> pa.Schema | None:
        return self._dataset.schema if self._dataset is not None else None

    def __len__(self) -> int:
        if self._array is not None:
            return int(self._array.shape[0])
        return int(self._dataset.count_rows())

    def describe(self) -> dict[str, Any]:
        """Where the queries come from and how they were read (for logs and metadata)."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "query_column": self.query_column,
            "id_column": self.id_column,
        }

    def batches(self, batch_size: int) -> Iterator[QueryBatch]:
        """The queries in file order, ``batch_size`` at a time."""
        seen: set[str] = set()
        start = 0
        for ids, values in self._raw_batches(batch_size):
            if ids is None:
                ids = [str(n) for n in range(start, start + len(values))]
            _check_ids(ids, seen, start)
            start += len(ids)
            yield QueryBatch(self.kind, ids, _labels(self.kind, values), values, self.folder)

    def _raw_batches(self, batch_size: int) -> Iterator[tuple[list[str] | None, QueryValues]]:
        if self._array is not None:
            for lo in range(0, len(self._array), batch_size):
                rows = np.asarray(self._array[lo : lo + batch_size], dtype=np.float32)
                yield None, pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), rows.shape[1])
            return
        columns = [self.query_column] + ([self.id_column] if self.id_column else [])
        for batch in self._dataset.to_batches(columns=columns, batch_size=batch_size):
            if batch.num_rows == 0:
                continue
            column = batch.column(self.query_column)
            values = column if self.kind == "embedding" else column.to_pylist()
            ids = None
            if self.id_column:
                ids = pc.cast(batch.column(self.id_column), pa.string()).to_pylist()
            yield ids, values


def query_set_version(path: str | Path) -> str:
    """A short content hash of the query set at ``path`` (a file, or every file of a folder,
    with its relative name): it changes exactly when the queries may have."""
    path = Path(path)
    if not path.exists():
        raise QuerySetError(f"query set {path} does not exist")
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else ""
        digest.update(name.encode() + b"\0")
        with file.open("rb") as source:  # in blocks: a query set may be larger than memory
            while block := source.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def _open_dataset(path: Path) -> ds.Dataset:
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    formats = {_FORMATS.get(f.suffix.lower()) for f in files if f.is_file()} - {None}
    if len(formats) != 1:
        found = "no parquet or CSV files" if not formats else "both parquet and CSV files"
        raise QuerySetError(f"query set {path}: {found} (expected .parquet, .csv or .npy)")
    file_format = formats.pop()
    try:
        dataset = ds.dataset(str(path), format=file_format)
        if file_format == "csv":
            # Every CSV column as text: ids like 007 keep their zeros, and a block of numeric
            # ids cannot fix a type that a later block contradicts.
            as_text = arrow_csv.ConvertOptions(
                column_types=dict.fromkeys(dataset.schema.names, pa.string())
            )
            dataset = ds.dataset(str(path), format=ds.CsvFileFormat(convert_options=as_text))
        return dataset
    except (pa.ArrowInvalid, OSError) as error:
        raise QuerySetError(f"query set {path} could not be read: {error}") from error


def _query_column(
    names: list[str], schema: pa.Schema | None, column: str | None, kind: str | None
) -> tuple[str | None, str]:
    if kind is not None and kind not in QUERY_COLUMNS:
        raise QuerySetError(f"query kind must be one of {tuple(QUERY_COLUMNS)}, not {kind!r}")
    if schema is None:  # a .npy array: rows are embeddings
        if kind not in (None, "embedding"):
            raise QuerySetError(f"a .npy query set holds embeddings, not {kind} queries")
        return None, "embedding"
    if column is not None:
        if column not in names:
            raise QuerySetError(f"query column {column!r} not in the query set ({names})")
        return column, kind or _kind_of(column, schema.field(column).type)
    for candidate_kind, candidates in QUERY_COLUMNS.items():
        if kind not in (None, candidate_kind):
            continue
        found = next((c for c in candidates if c in names), None)
        if found:
            return found, candidate_kind
    wanted = {k: list(v) for k, v in QUERY_COLUMNS.items() if kind in (None, k)}
    raise QuerySetError(
        f"no query column in the query set: found {names}, expected one of {wanted}"
    )


def _kind_of(column: str, dtype: pa.DataType) -> str:
    if pa.types.is_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return "embedding"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "image"
    return next((k for k, names in QUERY_COLUMNS.items() if column in names), "text")


def _id_column(names: list[str], column: str | None) -> str | None:
    if column is not None and column not in names:
        raise QuerySetError(f"id column {column!r} not in the query set ({names})")
    return column or next((c for c in ID_COLUMNS if c in names), None)


def _check_ids(ids: list[str | None], seen: set[str], start: int) -> None:
    for offset, query_id in enumerate(ids):
        if not query_id:
            raise QuerySetError(f"query {start + offset} has no id")
        if query_id in seen:
            raise QuerySetError(f"query id {query_id!r} appears more than once")
        seen.add(query_id)


def _labels(kind: str, values: QueryValues) -> list[str | None]:
    if kind in ("embedding", "image"):
        return [None] * len(values)
    return [None if v is None else str(v) for v in values]
