"""From rows finishing in any order to in-order images tables, and on to parquet files safely.

``OrderedRows`` reads row dicts (``pipeline.Row``) in completion order and hands IMAGES_SCHEMA
tables of ``row_group_rows`` consecutive rows, in input order, to a callback; it holds only
rows that finished after the first unfinished one, plus one row group being filled.
``RetryMerge`` streams an existing images table (as batches in row order) to a callback with
re-downloaded rows put in place of the old ones. ``KeepStored`` passes new tables on with each
row that failed but was ``ok`` in an earlier images file put back as it was. ``atomic_parquet``
writes such tables as row groups of one zstd parquet file that appears at its path only once
complete: a temp file in the same folder, then ``os.replace``; on any error the temp file is
removed and the path untouched. The file gets the mode the umask gives, like any file ``open``
creates.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clip_assets.atomic_files import replacing
from clip_assets.download.pipeline import Row
from clip_assets.download.reasons import TRANSIENT_REASONS
from clip_assets.download.summary import Counts, summary_metadata
from clip_assets.schemas import IMAGES_SCHEMA

Flush = Callable[[pa.Table], None]


class OrderedRows:
    """``add(index, row)`` in any order; ``flush`` gets in-order IMAGES_SCHEMA tables."""

    def __init__(self, metadata: pa.Table, row_group_rows: int, flush: Flush) -> None:
        self._uid = metadata["uid"]
        names = metadata.column_names
        self._url = metadata["url"] if "url" in names else pa.nulls(metadata.num_rows)
        self._total = metadata.num_rows
        self._group = max(1, row_group_rows)
        self._flush = flush
        self._waiting: dict[int, Row] = {}
        self._ready: list[Row] = []
        self._written = 0
        #: Every row before this index has arrived: how far ahead new rows may be started.
        self.next = 0

    def add(self, index: int, row: Row) -> None:
        self._waiting[index] = row
        while self.next in self._waiting:
            self._ready.append(self._waiting.pop(self.next))
            self.next += 1
        while len(self._ready) >= self._group:
            self._write(self._group)

    def finish(self) -> None:
        """Flushes the last rows; raises ``RuntimeError`` if any row never arrived."""
        if self.next != self._total:
            missing = self._total - self.next - len(self._waiting)
            raise RuntimeError(f"{missing} rows got no result (first: {self.next})")
        if self._ready:
            self._write(len(self._ready))

    def _write(self, count: int) -> None:
        rows, self._ready = self._ready[:count], self._ready[count:]
        start, self._written = self._written, self._written + count
        columns: dict[str, object] = {
            "uid": self._uid.slice(start, count).cast(pa.string()),
            "url": self._url.slice(start, count).cast(pa.string()),
        }
        for field in IMAGES_SCHEMA:
            if field.name not in columns:
                columns[field.name] = pa.array([row[field.name] for row in rows], field.type)
        table = pa.table(columns, schema=IMAGES_SCHEMA)
        del rows, columns  # the image bytes now live in ``table``: free the Python copies first
        self._flush(table)


def transient_failures(previous: pa.Table, metadata: pa.Table) -> list[int]:
    """Positions of ``previous``'s rows whose failure is transient (its ``uid``, ``status``
    and ``reason`` columns are read); ``ValueError`` if it was not made from ``metadata``."""
    if previous.num_rows != metadata.num_rows or not previous["uid"].equals(metadata["uid"]):
        raise ValueError("previous images table does not match metadata (uids or order differ)")
    failed = pc.equal(previous["status"], "failed")
    transient = pc.is_in(previous["reason"], pa.array(sorted(TRANSIENT_REASONS)))
    return pc.indices_nonzero(pc.and_kleene(failed, pc.fill_null(transient, False))).to_pylist()


class RetryMerge:
    """Streams ``previous`` batches to ``flush`` with the rows at ``indices`` replaced.

    ``add`` takes the re-downloaded rows in the order of ``indices`` (sorted), in tables of any
    size; a previous batch is flushed as soon as every replacement it needs has arrived. A
    replaced row's ``attempts`` adds to its old count; other rows come back byte-identical.
    """

    def __init__(self, previous: Iterable[pa.Table], indices: Sequence[int], flush: Flush):
        self._batches = iter(previous)
        self._current: pa.Table | None = None
        self._indices = indices
        self._flush = flush
        self._arrived: list[pa.Table] = []
        self._count = 0  # replacement rows received
        self._used = 0  # replacement rows merged
        self._start = 0  # row offset of the next previous batch

    def add(self, retried: pa.Table) -> None:
        self._arrived.append(retried)
        self._count += retried.num_rows
        self._drain()

    def finish(self) -> None:
        if self._count != len(self._indices):
            raise RuntimeError(f"{len(self._indices) - self._count} retried rows missing")
        self._drain()

    def _drain(self) -> None:
        while True:
            if self._current is None:
                self._current = next(self._batches, None)
                if self._current is None:
                    return
            end = self._start + self._current.num_rows
            needed = bisect.bisect_left(self._indices, end)
            if needed > self._count:
                return  # this batch's replacements are not all here yet
            positions = [i - self._start for i in self._indices[self._used : needed]]
            self._flush(_replace(self._current, self._take(len(positions)), positions))
            self._current, self._used, self._start = None, needed, end

    def _take(self, count: int) -> pa.Table:
        arrived = pa.concat_tables(self._arrived) if self._arrived else IMAGES_SCHEMA.empty_table()
        self._arrived = [arrived.slice(count)]
        return arrived.slice(0, count)


def _replace(batch: pa.Table, rows: pa.Table, positions: list[int]) -> pa.Table:
    batch = batch.cast(IMAGES_SCHEMA)
    if not positions:
        return batch
    old = pc.fill_null(batch["attempts"].take(positions), 0)
    attempts = pc.add(pc.fill_null(rows["attempts"], 0), old)
    at = IMAGES_SCHEMA.get_field_index("attempts")
    rows = rows.cast(IMAGES_SCHEMA).set_column(at, IMAGES_SCHEMA.field("attempts"), attempts)
    return _put(batch, rows, positions)


def _put(batch: pa.Table, rows: pa.Table, positions: list[int]) -> pa.Table:
    """``batch`` (IMAGES_SCHEMA) with row ``positions[j]`` replaced by ``rows`` row j."""
    order = list(range(batch.num_rows))
    for j, position in enumerate(positions):
        order[position] = batch.num_rows + j
    joined = pa.concat_tables([batch.cast(IMAGES_SCHEMA), rows.cast(IMAGES_SCHEMA)])
    return joined.take(pa.array(order, pa.int64()))


class KeepStored:
    """``with KeepStored(previous, flush) as keep:`` then ``keep.flush(table)`` per new table.

    A row of ``table`` whose status is ``failed`` and whose ``uid`` was ``ok`` in the images
    file ``previous`` is replaced by that stored row, byte-identical; every other row passes
    as it is. Only the uids and statuses of ``previous`` are held, plus one row group of it
    while its rows are put back (rows arrive in order, so each group is read about once).
    """

    def __init__(self, previous: Path, flush: Flush) -> None:
        self._file = pq.ParquetFile(previous)
        self._flush = flush
        stored = self._file.read(columns=["uid", "status"])
        ok = pc.indices_nonzero(pc.equal(stored["status"], "ok")).to_pylist()
        uids = stored["uid"].take(ok).to_pylist()
        self._stored = dict(zip(uids, ok, strict=True))
        sizes = [
            self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)
        ]
        self._starts = [0, *itertools.accumulate(sizes)][:-1]
        self._group: tuple[int, pa.Table] | None = None

    def __enter__(self) -> KeepStored:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def flush(self, table: pa.Table) -> None:
        failed = pc.indices_nonzero(pc.equal(table["status"], "failed")).to_pylist()
        uids = table["uid"].take(failed).to_pylist() if failed else []
        kept = [
            (p, self._stored[u]) for p, u in zip(failed, uids, strict=True) if u in self._stored
        ]
        if not kept:
            self._flush(table)
            return
        rows = pa.concat_tables([self._stored_row(i) for _, i in kept])
        self._flush(_put(table, rows, [p for p, _ in kept]))

    def _stored_row(self, index: int) -> pa.Table:
        group = bisect.bisect_right(self._starts, index) - 1
        if self._group is None or self._group[0] != group:
            self._group = (group, self._file.read_row_group(group).cast(IMAGES_SCHEMA))
        return self._group[1].slice(index - self._starts[group], 1)


@contextmanager
def atomic_parquet(
    path: Path, schema_metadata: dict[bytes, bytes] | None = None, *, earlier_s: float = 0.0
) -> Iterator[Flush]:
    """Yields a function appending IMAGES_SCHEMA tables to a zstd parquet file; it appears at
    ``path`` only if the block ends normally (the folder must exist). ``schema_metadata`` is
    stored in the file's schema (the settings that made it); the counts of what was written
    (``summary.summarize``'s keys) and the seconds the block took, plus ``earlier_s`` (a pass
    this one continues), as ``elapsed_s`` and ``images_per_s``, go in the file's footer, so a
    reader gets a partition's figures without reading the rows (``summary.stored_summary``)."""
    schema = IMAGES_SCHEMA.with_metadata(schema_metadata) if schema_metadata else IMAGES_SCHEMA
    counts = Counts()
    started = time.monotonic()
    with replacing(Path(path)) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:

        def write(table: pa.Table) -> None:
            writer.write_table(table)
            counts.add(table)

        yield write
        elapsed = earlier_s + time.monotonic() - started
        writer.add_key_value_metadata(summary_metadata(counts.summary(elapsed)))
