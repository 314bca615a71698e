"""One dataset's partitions: a dynamic partition per source slice, several per backfill run.

A partition key names one row slice of one source file (``clip_assets.source.slices``). A
backfill with ``BackfillPolicy.multi_run`` hands one run a range of keys, so expensive set-up
(the CLIP model, an HTTP client pool) happens once per run; the range travels in Dagster's own
range tags, which the discovery sensor and the driver set the same way.
"""

from __future__ import annotations

from dagster import BackfillPolicy, DynamicPartitionsDefinition

#: Partitions one backfill run serves: the model and client pools load once per run.
PARTITIONS_PER_RUN = 16
#: Dagster's guidance for one asset's partition count. At 50,000 rows a partition, DataComp
#: small has 256, medium 2,560, large 25,600 and xlarge 256,000: xlarge needs larger slices.
PARTITION_BUDGET = 100_000
#: Dagster's tag of a run over one partition (it sets it itself; the instance limits runs per
#: value, see dagster.yaml).
PARTITION_TAG = "dagster/partition"
#: Dagster's tags for a run over a partition range (what its own multi-run backfills set).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def shard_partitions(dataset: str) -> DynamicPartitionsDefinition:
    """The dynamic partitions of ``dataset``: one per source slice, named ``<ds>_shards``."""
    return DynamicPartitionsDefinition(name=f"{dataset}_shards")


def backfill_policy() -> BackfillPolicy:
    """Several partitions per backfill run, so a run loads the model once for all of them."""
    return BackfillPolicy.multi_run(max_partitions_per_run=PARTITIONS_PER_RUN)


def range_request(first: str, last: str) -> tuple[str | None, dict[str, str]]:
    """``(partition_key, tags)`` of a run over ``first..last``: a plain partition key for a
    single partition, Dagster's range tags otherwise."""
    if first == last:
        return first, {}
    return None, {RANGE_START_TAG: first, RANGE_END_TAG: last}


def contiguous_runs(order: list[str], wanted: list[str], max_len: int) -> list[tuple[str, str]]:
    """Groups ``wanted`` keys into (first, last) ranges of neighbours in partition ``order``,
    each at most ``max_len`` long: one run per range loads the model once for all of it."""
    wanted_set = set(wanted)
    ranges: list[tuple[str, str]] = []
    current: list[str] = []
    for key in order:
        if key in wanted_set and len(current) < max_len:
            current.append(key)
            continue
        if current:
            ranges.append((current[0], current[-1]))
        current = [key] if key in wanted_set else []
    if current:
        ranges.append((current[0], current[-1]))
    return ranges


def partition_budget_warning(partitions: int, rows_per_partition: int) -> str | None:
    """What to change when a dataset has more partitions than Dagster's guidance, else None."""
    if partitions <= PARTITION_BUDGET:
        return None
    needed = -(-partitions * rows_per_partition // PARTITION_BUDGET)
    return (
        f"{partitions:,} partitions exceed Dagster's guidance of {PARTITION_BUDGET:,} per asset "
        f"(the UI's partition views and backfill planning slow down); set rows_per_partition to "
        f"at least {needed:,} in the registry entry (now {rows_per_partition:,})"
    )
