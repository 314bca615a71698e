"""Which partitions an index build covers, and whether the ones it must leave out are few enough.

A partition that fails for good (a corrupt source slice, a host that never answers) must not
hold the index back forever, nor may a broken run quietly publish a fraction of the dataset.
:func:`index_coverage` takes the dataset's partitions, the ones with stored embeddings and the
ones whose last attempt failed, and returns what the build indexes and what it leaves out;
past the tolerated share of failed partitions it raises :class:`TooManyFailedPartitions`.
Partitions never attempted yet (discovered, not launched) are left out too, but are not
failures: partitions keep arriving. The result goes into ``index_infos.json`` under
``partitions``, where the asset's metadata and the release card read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class TooManyFailedPartitions(RuntimeError):
    """More partitions failed for good than the dataset tolerates; ``failed`` names them."""

    def __init__(self, failed: list[str], total: int, tolerated_share: float) -> None:
        more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
        shown = ", ".join(failed[:20]) + more
        super().__init__(
            f"{len(failed)} of {total} partitions failed ({len(failed) / total:.1%}), more than "
            f"the {tolerated_share:.1%} tolerated: {shown}. Re-execute them (select the failed "
            "partitions in the UI and materialize them; finished work is kept), or raise the "
            "dataset's tolerated_failed_share in the registry."
        )
        self.failed = failed


@dataclass(frozen=True)
class Coverage:
    """The partitions one build indexes (in partition order) and those it leaves out."""

    indexed: list[str]
    failed: list[str]
    not_materialized: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "indexed": len(self.indexed),
            "left_out": {"failed": self.failed, "not_materialized": self.not_materialized},
        }


def index_coverage(
    partitions: Iterable[str],
    stored: Iterable[str],
    failed: Iterable[str],
    tolerated_share: float,
) -> Coverage:
    """What to index: every partition with stored embeddings; the others are left out, as
    failed (their last attempt failed) or not materialised. Raises
    :class:`TooManyFailedPartitions` when failed partitions without embeddings exceed
    ``tolerated_share`` of all partitions."""
    order = sorted(set(partitions))
    have, broken = set(stored), set(failed)
    indexed = [key for key in order if key in have]
    left_failed = [key for key in order if key not in have and key in broken]
    pending = [key for key in order if key not in have and key not in broken]
    if left_failed and len(left_failed) > tolerated_share * len(order):
        raise TooManyFailedPartitions(left_failed, len(order), tolerated_share)
    return Coverage(indexed, left_failed, pending)
