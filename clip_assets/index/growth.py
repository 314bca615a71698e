"""Incremental add or rebuild: decide whether a previous build can take the new shards as is.

A trained IVF index keeps its centroids (and OPQ/PQ codebooks) when vectors are added, so new
partitions can be appended without retraining while they are a small share of the whole; past
that share the centroids no longer describe the data and the index is rebuilt from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss

from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.infos import read_infos
from clip_assets.index.shards import ShardEntry, read_shard_list
from clip_assets.paths import INDEX_NAME, INFOS_NAME, SHARD_LIST_NAME


@dataclass
class GrowthPlan:
    """``mode`` and why; for ``incremental``, the loaded previous index, its key, and the first
    faiss id still to add (the previous build's vector count)."""

    mode: Literal["rebuilt", "incremental"]
    reason: str
    index: faiss.Index | None = None
    index_key: str | None = None
    start_id: int = 0


def _rebuild(reason: str) -> GrowthPlan:
    return GrowthPlan("rebuilt", reason)


def _prefix_mismatch(old: list[ShardEntry], new: list[ShardEntry]) -> str | None:
    """Why ``old`` is not the start of ``new`` (same names, row counts and uids, same order)."""
    if len(old) > len(new):
        return f"{len(old) - len(new)} shard(s) of the previous build are gone"
    for before, now in zip(old, new, strict=False):
        if (before.name, before.rows, before.uid_digest) != (now.name, now.rows, now.uid_digest):
            return f"shard {before.name!r} changed or moved (now {now.name!r})"
    return None


def plan_growth(
    previous: Path | None, entries: list[ShardEntry], settings: IndexSettings
) -> GrowthPlan:
    """Decide between adding to ``previous`` and rebuilding, for the shards ``entries``.

    Reads ``previous/{faiss,index_infos.json,shards.json}``; loads the previous index into memory
    (not mmapped: it will be written to) only when the answer is ``incremental``.
    """
    if previous is None:
        return _rebuild("no previous build")
    previous = Path(previous)
    needed = [previous / name for name in (INDEX_NAME, INFOS_NAME, SHARD_LIST_NAME)]
    if not all(path.exists() for path in needed):
        return _rebuild(f"previous build at {previous} is incomplete")
    infos = read_infos(previous)
    key = infos.get("index_key", "")
    if infos.get("metric_type") != settings.metric_type:
        return _rebuild(f"metric changed ({infos.get('metric_type')} -> {settings.metric_type})")
    if settings.index_key and settings.index_key != key:
        return _rebuild(f"index_key changed ({key} -> {settings.index_key})")
    if "IVF" not in key:
        return _rebuild(f"previous index {key} is not a trained IVF index")
    old = read_shard_list(previous / SHARD_LIST_NAME)
    mismatch = _prefix_mismatch(old, entries)
    if mismatch:
        return _rebuild(mismatch)
    old_total = sum(entry.rows for entry in old)
    new_total = sum(entry.rows for entry in entries)
    share = (new_total - old_total) / new_total
    if share > settings.incremental_add_max_share:
        return _rebuild(
            f"new vectors are {share:.1%} of {new_total} "
            f"(> incremental_add_max_share {settings.incremental_add_max_share:.0%})"
        )
    index = faiss.read_index(str(previous / INDEX_NAME))
    if index.ntotal != old_total:
        return _rebuild(f"previous index holds {index.ntotal} vectors, its shard list {old_total}")
    return GrowthPlan(
        "incremental",
        f"added {new_total - old_total} vectors ({share:.1%} of {new_total}) without retraining",
        index=index,
        index_key=key,
        start_id=old_total,
    )
