"""The id mapping: faiss id ``i`` -> ``uid``, ``url``, ``text`` (``ID_MAPPING_SCHEMA``).

Built from the ``shards.json`` the index build wrote, so row ``i`` of the mapping is the row the
build added as vector ``i``. Each shard's uids are checked against the digest recorded at build
time: embeddings rewritten after the build raise instead of producing a silently shifted mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.index.shards import ShardEntry, read_shard_list, uid_digest
from clip_assets.schemas import ID_MAPPING_SCHEMA

DEFAULT_CHUNK_ROWS = 1_000_000


def _shard_mapping(entry: ShardEntry, embeddings: pa.Table, texts: pa.Table | None) -> pa.Table:
    """Mapping rows of one shard; raises ``ValueError`` if it is not the shard that was indexed."""
    if embeddings.num_rows != entry.rows or uid_digest(embeddings["uid"]) != entry.uid_digest:
        raise ValueError(
            f"shard {entry.name!r} changed since the index was built "
            f"({embeddings.num_rows} rows now, {entry.rows} indexed)"
        )
    if texts is None:
        text = pa.nulls(entry.rows, pa.string())
    else:
        # First metadata row per uid: a join could duplicate rows when a uid repeats.
        position = pc.index_in(embeddings["uid"], value_set=texts["uid"].combine_chunks())
        text = texts["text"].combine_chunks().take(position)
    ids = np.arange(entry.first_id, entry.first_id + entry.rows, dtype=np.int64)
    return pa.table(
        [pa.array(ids), embeddings["uid"], embeddings["url"], text], schema=ID_MAPPING_SCHEMA
    )


def build_id_mapping(
    shard_list: Path | Sequence[ShardEntry] | Sequence[dict],
    read_embeddings: Callable[[str], pa.Table],
    read_texts: Callable[[str], pa.Table] | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Yield ``ID_MAPPING_SCHEMA`` tables covering ids ``0 .. n-1`` exactly once, in id order.

    Args:
        shard_list: ``shards.json`` (or the index folder holding it, or its entries).
        read_embeddings: shard name -> that shard's embeddings table (``uid``, ``url`` at least),
            in stored row order.
        read_texts: shard name -> a table with ``uid`` and ``text`` (the metadata partition);
            ``text`` is null where a uid is missing, or everywhere when not given.
        chunk_rows: rows per yielded table (the last may be shorter), e.g. one
            ``id_mapping/<n>.parquet`` each.
    """
    pending: list[pa.Table] = []
    pending_rows = 0
    for entry in read_shard_list(shard_list):
        embeddings = read_embeddings(entry.name).select(["uid", "url"])
        texts = read_texts(entry.name).select(["uid", "text"]) if read_texts else None
        table = _shard_mapping(entry, embeddings, texts)
        pending.append(table)
        pending_rows += table.num_rows
        while pending_rows >= chunk_rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, chunk_rows).combine_chunks()
            rest = merged.slice(chunk_rows)
            pending, pending_rows = [rest], rest.num_rows
    if pending_rows:
        yield pa.concat_tables(pending).combine_chunks()
