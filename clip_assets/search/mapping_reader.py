"""Faiss id -> (url, uid, caption), read from a folder of id-mapping parquet files.

Reads our mapping (``i``, ``uid``, ``url``, ``text``), Fondant's (``url``, ``i``) and clip back's
``metadata/`` (no ``i``: row n of the sorted files is id n). Columns a layout lacks come back as
``None``. Rows stay in Arrow memory (compact strings) and are gathered with one Arrow ``take``
per query or batch of hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Result field -> mapping column names that may hold it, in order of preference.
_FIELDS = {"url": ("url",), "uid": ("uid",), "caption": ("text", "caption")}


@dataclass(frozen=True)
class Row:
    """The metadata of one faiss id."""

    url: str | None
    uid: str | None
    caption: str | None


class IdMapping:
    """Look up the metadata of faiss ids."""

    def __init__(self, table: pa.Table) -> None:
        """``table`` has any of the known columns; ``i`` (faiss id) if rows are not in id order."""
        self._columns = {
            field: next((n for n in names if n in table.column_names), None)
            for field, names in _FIELDS.items()
        }
        keep = sorted({c for c in self._columns.values() if c is not None})
        self._table = table.select(keep).combine_chunks()
        self._positions = _positions(table["i"]) if "i" in table.column_names else None

    @classmethod
    def read(cls, folder: str | Path) -> IdMapping:
        """Read every ``*.parquet`` file of ``folder``, in name order."""
        files = sorted(Path(folder).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no parquet files in {folder}")
        wanted = {"i", *(n for names in _FIELDS.values() for n in names)}
        tables = []
        for file in files:
            names = pq.read_schema(file).names
            tables.append(pq.read_table(file, columns=[n for n in names if n in wanted]))
        return cls(pa.concat_tables(tables, promote_options="default"))

    def __len__(self) -> int:
        return self._table.num_rows

    @property
    def columns(self) -> dict[str, str | None]:
        """Which mapping column serves each result field (``None``: the layout lacks it)."""
        return dict(self._columns)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``ids`` have a row."""
        ids = np.asarray(ids, dtype=np.int64)
        limit = len(self) if self._positions is None else len(self._positions)
        inside = (ids >= 0) & (ids < limit)
        if self._positions is not None:
            inside[inside] = self._positions[ids[inside]] >= 0
        return inside

    def rows(self, ids: list[int] | np.ndarray) -> list[Row]:
        """The rows of ``ids``, in order; raises ``KeyError`` for an id with no row."""
        taken = self.take(ids)
        values = [taken[field].to_pylist() for field in _FIELDS]
        return [Row(*row) for row in zip(*values, strict=True)]

    def take(self, ids: list[int] | np.ndarray) -> pa.Table:
        """The ``url``, ``uid`` and ``caption`` (string columns, null where the layout lacks
        one) of ``ids``, in order, gathered in one Arrow call; ``KeyError`` for an unknown id."""
        ids = np.asarray(ids, dtype=np.int64)
        missing = ids[~self.contains(ids)]
        if missing.size:
            raise KeyError(f"ids not in the id mapping: {missing[:10].tolist()}")
        positions = ids if self._positions is None else self._positions[ids]
        taken = self._table.take(pa.array(positions, pa.int64()))
        return pa.table(
            {
                field: _as_strings(taken[column]) if column else pa.nulls(len(ids), pa.string())
                for field, column in self._columns.items()
            }
        )

    def value_codes(self, field: str) -> np.ndarray:
        """An int64 code per faiss id (index = id): two ids share a code exactly when both
        have the same non-null ``field`` value (``url``, ``uid`` or ``caption``). Ids without a
        value, and ids with no row, get codes of their own."""
        limit = len(self) if self._positions is None else len(self._positions)
        column = self._columns[field]
        own = np.arange(limit, dtype=np.int64)
        if column is None:
            return own
        encoded = pc.dictionary_encode(self._table[column]).combine_chunks()
        by_position = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
        codes = own + len(encoded.dictionary)  # past every group code: one of its own per id
        if self._positions is None:
            by_id = by_position
        else:
            by_id = np.full(limit, -1, dtype=np.int64)
            present = self._positions >= 0
            by_id[present] = by_position[self._positions[present]]
        return np.where(by_id >= 0, by_id, codes)


def str_or_none(value: object) -> str | None:
    """Mapping values as strings (a uid stored as bytes or int still prints as text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A mapping column as strings: a uid stored as bytes or an integer still reads as text."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return pa.chunked_array(
            [
                pa.array([str_or_none(v) for v in chunk.to_pylist()], pa.string())
                for chunk in column.chunks
            ],
            pa.string(),
        )
    return column.cast(pa.string())


def _positions(ids: pa.ChunkedArray) -> np.ndarray | None:
    """Row position of each faiss id, or ``None`` when row n already holds id n."""
    values = ids.to_numpy()
    if pc.any(pc.is_null(ids)).as_py():
        raise ValueError("id mapping column i has nulls")
    if np.array_equal(values, np.arange(len(values))):
        return None
    if values.min() < 0:
        raise ValueError("id mapping column i has negative ids")
    positions = np.full(int(values.max()) + 1, -1, dtype=np.int64)
    positions[values] = np.arange(len(values))
    if np.count_nonzero(positions >= 0) != len(values):
        raise ValueError("id mapping column i has duplicate ids")
    return positions
