"""Which model made an embeddings file: recorded in the file, compared across files.

Reads and writes only parquet schema metadata. The embeddings asset stores the encoder's
identity under ``MODEL_IDENTITY_KEY``; the index reads it back from every shard it indexes and
refuses to mix models. The comparison uses the *portable* identity (no local weights path, no
device): the same weights, by sha256, embedded on two machines are the same model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: Parquet schema metadata key holding the model identity, so later stages (and anyone
#: reading the file) know which model made the vectors.
MODEL_IDENTITY_KEY = b"clip_assets.model"
_MACHINE_LOCAL = ("weights_file", "device")


class ModelMismatchError(ValueError):
    """Shards embedded by different models; ``identities`` maps shard name -> identity."""

    def __init__(self, identities: dict[str, dict[str, Any]]) -> None:
        super().__init__(
            "embeddings partitions were made by different models; re-embed them with one "
            "model before indexing"
        )
        self.identities = identities


def portable(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity without what belongs to one machine (the local weights path, the device)."""
    return {k: v for k, v in identity.items() if k not in _MACHINE_LOCAL}


def with_identity(table: pa.Table, identity: dict[str, Any]) -> pa.Table:
    """``table`` with ``identity`` recorded in its schema metadata."""
    return table.replace_schema_metadata(
        {MODEL_IDENTITY_KEY: json.dumps(identity, sort_keys=True).encode()}
    )


def read_identity(path: Path) -> dict[str, Any]:
    """The identity recorded in the embeddings file ``path`` (``{}`` when it has none)."""
    schema_metadata = pq.read_schema(path).metadata or {}
    return json.loads(schema_metadata.get(MODEL_IDENTITY_KEY, b"{}").decode())


def shared_identity(shards: Iterable[tuple[str, Path]]) -> dict[str, Any]:
    """The portable identity all ``(name, path)`` shards were embedded with; raises
    :class:`ModelMismatchError` when they differ."""
    identities = {name: read_identity(path) for name, path in shards}
    distinct = {json.dumps(portable(i), sort_keys=True) for i in identities.values()}
    if len(distinct) > 1:
        raise ModelMismatchError(identities)
    return portable(next(iter(identities.values()), {}))
