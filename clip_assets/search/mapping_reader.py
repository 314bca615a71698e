"""Faiss id -> (url, uid, caption), read from a folder of id-mapping parquet files.

Reads our mapping (``i``, ``uid``, ``url``, ``text``), Fondant's (``url``, ``i``) and clip back's
``metadata/`` (no ``i``: row n of the sorted files is id n). Columns a layout lacks come back as
``None``. Rows stay in Arrow memory (compact strings) and are gathered per query.
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
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return []
        missing = ids[~self.contains(ids)]
        if missing.size:
            raise KeyError(f"ids not in the id mapping: {missing[:10].tolist()}")
        positions = ids if self._positions is None else self._positions[ids]
        taken = self._table.take(pa.array(positions))
        values = {
            field: taken[column].to_pylist() if column else [None] * len(ids)
            for field, column in self._columns.items()
        }
        return [Row(*(str_or_none(v) for v in row)) for row in zip(*values.values(), strict=True)]


def str_or_none(value: object) -> str | None:
    """Mapping values as strings (a uid stored as bytes or int still prints as text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


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
