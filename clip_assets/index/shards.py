"""Embeddings shards as the index sees them: their order, their ids, and their vectors, streamed.

Faiss ids are assigned by position: shard order as given, then row order inside each shard. The
list written next to the index (``shards.json``) records that order, each shard's row count,
first id and a digest of its uids, so the id mapping, the checks and an incremental build can all
prove they agree with the index instead of assuming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.paths import SHARD_LIST_NAME
from clip_assets.streamed_parquet import open_streamed


@dataclass(frozen=True)
class EmbeddingShard:
    """One embeddings partition: ``name`` is its partition key, ``path`` a local parquet file with
    the embeddings schema (``uid``, ``url``, ``embedding``)."""

    name: str
    path: Path


@dataclass(frozen=True)
class ShardEntry:
    """A shard list entry: ids ``first_id .. first_id + rows - 1`` are the rows of ``name``."""

    name: str
    rows: int
    first_id: int
    uid_digest: str


def uid_digest(uids: pa.ChunkedArray | pa.Array) -> str:
    """SHA-1 of the shard's uids in row order: equal digests mean the same rows, same order."""
    digest = hashlib.sha1()
    for uid in uids.to_pylist():
        digest.update(b"\x00" if uid is None else uid.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def describe_shards(shards: Sequence[EmbeddingShard]) -> tuple[list[ShardEntry], int]:
    """Manifest entries for ``shards`` in the given order, and the embedding dimension.

    Reads only parquet footers, the schema and the ``uid`` column, never the vectors.
    """
    names = [shard.name for shard in shards]
    if len(set(names)) != len(names):
        raise ValueError(f"shard names must be unique, got {names}")
    entries: list[ShardEntry] = []
    dims: set[int] = set()
    first_id = 0
    for shard in shards:
        dims.add(embedding_dim(pq.read_schema(shard.path)))
        uids = pq.read_table(shard.path, columns=["uid"]).column("uid")
        entries.append(ShardEntry(shard.name, len(uids), first_id, uid_digest(uids)))
        first_id += len(uids)
    if len(dims) > 1:
        raise ValueError(f"shards disagree on the embedding dimension: {sorted(dims)}")
    if not dims:
        raise ValueError("no shards to index")
    return entries, dims.pop()


def embedding_dim(schema: pa.Schema) -> int:
    """Dimension of the fixed-size ``embedding`` column of an embeddings schema."""
    field_type = schema.field("embedding").type
    if not pa.types.is_fixed_size_list(field_type):
        raise ValueError(f"embedding must be a fixed_size_list, got {field_type}")
    return field_type.list_size


def embeddings_to_numpy(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """``(rows, dim)`` float32 array from an embedding column (float16 is widened)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"{column.null_count} null embeddings")
    # flatten() honours slice offsets, unlike .values.
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), dim).astype(np.float32, copy=False)


def iter_vectors(
    shards: Sequence[EmbeddingShard], dim: int, batch_rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_id, vectors)`` batches in id order, at most ``batch_rows`` rows each.

    Only one batch is in memory at a time, so a build never holds a second copy of all vectors.
    """
    first_id = 0
    for shard in shards:
        with open_streamed(shard.path) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=["embedding"]):
                vectors = embeddings_to_numpy(batch.column(0), dim)
                yield first_id, vectors
                first_id += len(vectors)


def gather_vectors(
    shards: Sequence[EmbeddingShard], dim: int, ids: np.ndarray, batch_rows: int
) -> np.ndarray:
    """The vectors at faiss ids ``ids`` (any order, no duplicates), in the order of ``ids``."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    out = np.empty((len(ids), dim), dtype=np.float32)
    for first_id, vectors in iter_vectors(shards, dim, batch_rows):
        lo, hi = np.searchsorted(sorted_ids, [first_id, first_id + len(vectors)])
        out[order[lo:hi]] = vectors[sorted_ids[lo:hi] - first_id]
    return out


def write_shard_list(entries: Sequence[ShardEntry], path: Path) -> None:
    """Write ``shards.json`` atomically (temp file + rename)."""
    payload = {
        "total_rows": sum(entry.rows for entry in entries),
        "shards": [asdict(entry) for entry in entries],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def read_shard_list(
    source: bytes | Path | Sequence[ShardEntry] | Sequence[dict],
) -> list[ShardEntry]:
    """Shard list entries from ``shards.json`` (its bytes, its path or its index folder) or
    from already-loaded entries."""
    if isinstance(source, bytes):
        raw = json.loads(source)["shards"]
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            path = path / SHARD_LIST_NAME
        raw = json.loads(path.read_text())["shards"]
    else:
        raw = list(source)
    entries = [e if isinstance(e, ShardEntry) else ShardEntry(**e) for e in raw]
    expected = 0
    for entry in entries:
        if entry.first_id != expected:
            raise ValueError(f"shard list not contiguous at shard {entry.name!r}")
        expected += entry.rows
    return entries
