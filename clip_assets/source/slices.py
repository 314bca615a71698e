"""Source files cut into row slices: one slice is one Dagster partition.

**Contract** (docs/architecture.md, "Partitions"): keys use only ``[A-Za-z0-9._-]``, are stable
for a given source file and slice, and sort in source order. A key is
``<file stem>-<slice:04d>``, where the stem is the file's relative path without ``.parquet`` ("/"
becoming "."), other characters becoming "_", and each run of 32 or more hex digits (DataComp
names files by hash) shortened to its first 12, which keeps keys short and, being a prefix,
keeps their order.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from clip_assets.source.files import SourceFile

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LONG_HEX = re.compile(r"[0-9a-f]{32,}")


@dataclass(frozen=True)
class ShardSlice:
    """Rows ``[start, stop)`` of one source file at one version: one partition's input."""

    key: str
    file: str
    version: str
    revision: str | None
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def file_stem_key(path: str) -> str:
    """The key prefix that names one source file."""
    stem = path.removesuffix(".parquet").replace("/", ".")
    stem = _LONG_HEX.sub(lambda match: match.group(0)[:12], stem)
    return _UNSAFE.sub("_", stem)


def partition_key(path: str, index: int) -> str:
    """The partition key of slice ``index`` of the source file at ``path``."""
    return f"{file_stem_key(path)}-{index:04d}"


def plan_slices(file: SourceFile, num_rows: int, rows_per_partition: int) -> list[ShardSlice]:
    """Every slice of ``file``; a file of 0 rows has none."""
    return [
        ShardSlice(
            key=partition_key(file.path, index),
            file=file.path,
            version=file.version,
            revision=file.revision,
            start=start,
            stop=min(start + rows_per_partition, num_rows),
        )
        for index, start in enumerate(range(0, num_rows, rows_per_partition))
    ]


def manifest_to_json(slices: dict[str, ShardSlice]) -> bytes:
    """The partition manifest (key -> slice), sorted by key so equal manifests are equal bytes."""
    body = {key: asdict(slices[key]) for key in sorted(slices)}
    return json.dumps(body, indent=1, sort_keys=True).encode()


def manifest_from_json(data: bytes) -> dict[str, ShardSlice]:
    """Reads what :func:`manifest_to_json` wrote."""
    return {key: ShardSlice(**value) for key, value in json.loads(data).items()}
