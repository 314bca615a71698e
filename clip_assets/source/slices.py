"""Source files cut into row slices: one slice is one Dagster partition.

**Contract** (docs/architecture.md, "Partitions"): keys use only ``[A-Za-z0-9._-]``, are stable
for a given source file and slice, and sort in source order. A key is ``<file stem>-<slice:04d>``:

- A *plain* name (a ``.parquet`` path whose folders and stem use only letters, digits, ``_``
  and ``-``) keeps its stem readable: "/" becomes ".", and a run of 32 or more hex digits
  (DataComp names files by hash) is shortened to its first 12, which keeps keys short and,
  being a prefix, keeps their order. ``<32 hex>.parquet`` is ``<first 12 hex>-0003``,
  ``part_1/<32 hex>.parquet`` is ``part_1.<first 12 hex>-0000``.
- Any other name is lossy once its other characters become "_" (``a b`` and ``a_b`` would
  meet), so its stem also carries ``..`` and 8 hex digits of the SHA-256 of the whole path:
  ``a b.parquet`` is ``a_b..<8 hex>-0000``. A plain stem never holds ``..``, so the two
  kinds never meet.

What the rule cannot rule out (two hash names sharing their first 12 hex digits, two digests
alike, keys that differ only in case and so would share a file on a case-insensitive disk)
discovery refuses: the file that would take a key another file holds is skipped and reported
(``discover.py``), so the manifest never flips between files. Slices of one file sort in row
order; a file may have at most 10,000 slices (``-0000`` to ``-9999``), beyond which the
numbers would no longer sort.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from clip_assets.source.files import SourceError, SourceFile

MAX_SLICES_PER_FILE = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LONG_HEX = re.compile(r"[0-9a-f]{32,}")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\.parquet")


@dataclass(frozen=True)
class ShardSlice:
    """Rows ``[start, stop)`` of one source file at one version: one partition's input."""

    key: str
    file: str
    version: str
    revision: str | None
    start: int
    stop: int
    fingerprint: str | None = None  # see SourceFile.fingerprint

    @property
    def rows(self) -> int:
        return self.stop - self.start


def file_stem_key(path: str) -> str:
    """The key prefix that names one source file (the rule is in the module docstring)."""
    stem = path.removesuffix(".parquet").replace("/", ".")
    readable = _UNSAFE.sub("_", _LONG_HEX.sub(lambda match: match.group(0)[:12], stem))
    if _PLAIN_PATH.fullmatch(path):
        return readable
    return f"{readable}..{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def partition_key(path: str, index: int) -> str:
    """The partition key of slice ``index`` of the source file at ``path``."""
    return f"{file_stem_key(path)}-{index:04d}"


def plan_slices(file: SourceFile, num_rows: int, rows_per_partition: int) -> list[ShardSlice]:
    """Every slice of ``file``; a file of 0 rows has none. More than
    :data:`MAX_SLICES_PER_FILE` slices is a :class:`SourceError`."""
    count = -(-num_rows // rows_per_partition)
    if count > MAX_SLICES_PER_FILE:
        raise SourceError(
            f"{file.path}: {num_rows} rows make {count} partitions of {rows_per_partition} "
            f"rows; at most {MAX_SLICES_PER_FILE} per file keep keys in order "
            "(raise rows_per_partition in the dataset registry)"
        )
    return [
        ShardSlice(
            key=partition_key(file.path, index),
            file=file.path,
            version=file.version,
            revision=file.revision,
            start=start,
            stop=min(start + rows_per_partition, num_rows),
            fingerprint=file.fingerprint,
        )
        for index, start in enumerate(range(0, num_rows, rows_per_partition))
    ]


def manifest_to_json(slices: dict[str, ShardSlice]) -> bytes:
    """The partition manifest (key -> slice), sorted by key so equal manifests are equal bytes."""
    body = {key: asdict(slices[key]) for key in sorted(slices)}
    return json.dumps(body, indent=1, sort_keys=True).encode()


def manifest_from_json(data: bytes) -> dict[str, ShardSlice]:
    """Reads what :func:`manifest_to_json` wrote (also manifests older than ``fingerprint``)."""
    return {key: ShardSlice(**value) for key, value in json.loads(data).items()}
