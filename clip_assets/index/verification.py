"""Quality checks on embeddings, the index and the id mapping: plain functions for asset checks.

Each returns ``CheckResult(passed, metadata)``; the metadata says what was measured so a failed
check explains itself. None raises on bad data: a corrupt input is a failed check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.index.infos import read_infos
from clip_assets.index.load import open_index
from clip_assets.index.shards import embedding_dim, embeddings_to_numpy, read_shard_list
from clip_assets.paths import INDEX_NAME
from clip_assets.streamed_parquet import open_streamed

__all__ = [
    "CheckResult",
    "check_embeddings",
    "check_id_mapping",
    "check_index_size",
    "check_recall",
    "open_index",
]

MAX_EXAMPLES = 5


class CheckResult(NamedTuple):
    """``passed`` and JSON-ready ``metadata`` (unpacks as a tuple)."""

    passed: bool
    metadata: dict[str, Any]


def _tables(source: pa.Table | Path | Iterable[pa.Table | Path], batch_rows: int) -> Iterator:
    """Record batches/tables from a table, a parquet path, or an iterable of either."""
    items = [source] if isinstance(source, (pa.Table, str, Path)) else source
    for item in items:
        if isinstance(item, pa.Table):
            yield item
        else:
            with open_streamed(item) as parquet:
                yield from parquet.iter_batches(batch_size=batch_rows)


def check_embeddings(
    source: pa.Table | Path | Iterable[pa.Table | Path],
    *,
    dim: int = 512,
    norm_tolerance: float = 1e-3,
    batch_rows: int = 65_536,
) -> CheckResult:
    """Every embedding is ``dim``-d, finite, and unit-norm within ``norm_tolerance``."""
    rows = nan_rows = off_norm = 0
    norms_min, norms_max = np.inf, -np.inf
    for table in _tables(source, batch_rows):
        found = embedding_dim(table.schema)
        if found != dim:
            return CheckResult(False, {"dim": found, "expected_dim": dim})
        vectors = embeddings_to_numpy(table.column("embedding"), dim)
        finite = np.isfinite(vectors).all(axis=1)
        norms = np.linalg.norm(vectors[finite], axis=1)
        rows += len(vectors)
        nan_rows += int((~finite).sum())
        off_norm += int((np.abs(norms - 1.0) > norm_tolerance).sum())
        if len(norms):
            norms_min, norms_max = min(norms_min, norms.min()), max(norms_max, norms.max())
    metadata = {
        "rows": rows,
        "dim": dim,
        "non_finite_rows": nan_rows,
        "not_unit_norm_rows": off_norm,
        "min_norm": float(norms_min) if rows else None,
        "max_norm": float(norms_max) if rows else None,
        "norm_tolerance": norm_tolerance,
    }
    return CheckResult(nan_rows == 0 and off_norm == 0, metadata)


def check_index_size(index_dir: Path, expected_rows: int) -> CheckResult:
    """The index file opens and holds ``expected_rows`` vectors, as do its shard list and infos,
    and the file has the size the build recorded (a truncated or replaced file fails)."""
    index_dir = Path(index_dir)
    metadata: dict[str, Any] = {"expected_rows": expected_rows}
    try:
        infos = read_infos(index_dir)
        metadata["shard_list_rows"] = sum(e.rows for e in read_shard_list(index_dir))
        metadata["infos_rows"] = infos.get("nb vectors")
        metadata["file_bytes"] = (index_dir / INDEX_NAME).stat().st_size
        metadata["recorded_bytes"] = infos.get("size in bytes")
        metadata["index_rows"] = int(open_index(index_dir, mmap=True).ntotal)
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        metadata["error"] = f"{type(error).__name__}: {error}"[:500]
        return CheckResult(False, metadata)
    counts = (metadata["index_rows"], metadata["shard_list_rows"], metadata["infos_rows"])
    passed = all(c == expected_rows for c in counts) and (
        metadata["file_bytes"] == metadata["recorded_bytes"]
    )
    return CheckResult(passed, metadata)


def check_id_mapping(
    index_dir: Path,
    mapping: Iterable[pa.Table | Path],
    read_embeddings: Callable[[str], pa.Table],
) -> CheckResult:
    """The mapping lists ids ``0..n-1`` once each, in id order (row i = faiss id i, as
    clip-retrieval's metadata expects), and its ``uid``/``url`` at id i equal row i of the
    embeddings in the build's shard order (``read_embeddings``: shard name -> table)."""
    entries = read_shard_list(index_dir)
    n = sum(entry.rows for entry in entries)
    starts = np.array([entry.first_id for entry in entries], dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    duplicates = out_of_range = mismatched = 0
    examples: list[int] = []
    next_id, in_order = 0, True
    cached: tuple[int, pa.Table] | None = None
    for table in _tables(mapping, 1_000_000):
        ids = table.column("i").to_numpy(zero_copy_only=False).astype(np.int64)
        in_order &= bool(np.array_equal(ids, np.arange(next_id, next_id + len(ids))))
        next_id += len(ids)
        valid = (ids >= 0) & (ids < n)
        out_of_range += int((~valid).sum())
        ids_ok = ids[valid]
        unique, counts = np.unique(ids_ok, return_counts=True)
        duplicates += int((counts - 1).sum() + seen[unique].sum())
        seen[unique] = True
        shard_of = np.searchsorted(starts, ids_ok, side="right") - 1
        rows_ok = np.flatnonzero(valid)
        for shard in np.unique(shard_of):
            if cached is None or cached[0] != shard:
                cached = (shard, read_embeddings(entries[shard].name).select(["uid", "url"]))
            take = shard_of == shard
            expected = cached[1].take(pa.array(ids_ok[take] - starts[shard]))
            got = table.select(["uid", "url"]).take(pa.array(rows_ok[take]))
            same = np.ones(int(take.sum()), dtype=bool)
            for column in ("uid", "url"):
                equal = pc.equal(got[column], expected[column]).combine_chunks()
                both_null = pc.and_(pc.is_null(got[column]), pc.is_null(expected[column]))
                same &= pc.or_(equal, both_null).fill_null(False).to_numpy(zero_copy_only=False)
            mismatched += int((~same).sum())
            examples.extend(ids_ok[take][~same][: MAX_EXAMPLES - len(examples)].tolist())
    missing = int(n - seen.sum())
    metadata = {
        "expected_ids": n,
        "rows": next_id,
        "missing_ids": missing,
        "duplicate_ids": duplicates,
        "out_of_range_ids": out_of_range,
        "in_id_order": in_order and next_id == n,
        "rows_disagreeing_with_embeddings": mismatched,
        "disagreeing_id_examples": examples,
    }
    passed = (missing, duplicates, out_of_range, mismatched) == (0, 0, 0, 0) and in_order
    return CheckResult(passed, metadata)


def check_recall(infos: dict[str, Any] | Path, threshold: float) -> CheckResult:
    """Every measured query set (held-out image queries, text queries) has recall@k of at least
    ``threshold``; an index without measured recall (e.g. a Fondant release) fails."""
    infos = infos if isinstance(infos, dict) else read_infos(infos)
    k = infos.get("recall_k")
    sets = {
        name: figures
        for name, figures in infos.get("recall", {}).items()
        if isinstance(figures, dict)
    }
    if k is None or not sets:
        return CheckResult(False, {"threshold": threshold, "error": "no recall recorded"})
    by_set = {name: figures[f"recall@{k}"] for name, figures in sets.items()}
    metadata = {
        "threshold": threshold,
        "k": k,
        **{f"{name}_recall@{k}": value for name, value in by_set.items()},
        "index_param": infos.get("index_param"),
    }
    return CheckResult(all(value >= threshold for value in by_set.values()), metadata)
