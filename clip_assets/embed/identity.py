"""What made an embeddings file: the model and the images, recorded in the file.

Reads and writes only parquet schema metadata. The embeddings asset stores the encoder's
identity under ``MODEL_IDENTITY_KEY`` and the digest of the images it embedded under
``IMAGES_DIGEST_KEY``; the index reads the identity back from every shard it indexes and
refuses to mix models, and a rerun keeps a file whose model and images are unchanged. Models
are compared by their *portable* identity (no local weights path, no device): the same
weights, by sha256, embedded on two machines are the same model.
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
#: The ``content_sha256`` of the images file the vectors were computed from.
IMAGES_DIGEST_KEY = b"clip_assets.images_sha256"
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


def with_identity(table: pa.Table, identity: dict[str, Any], images_digest: str) -> pa.Table:
    """``table`` with the model ``identity`` and its images' digest in its schema metadata."""
    return table.replace_schema_metadata(
        {
            MODEL_IDENTITY_KEY: json.dumps(identity, sort_keys=True).encode(),
            IMAGES_DIGEST_KEY: images_digest.encode(),
        }
    )


def made_from(schema: pa.Schema, identity: dict[str, Any], images_digest: str | None) -> bool:
    """Whether the embeddings file with ``schema`` was made by this model from these images."""
    recorded = (schema.metadata or {}).get(IMAGES_DIGEST_KEY)
    return (
        images_digest is not None
        and recorded == images_digest.encode()
        and same_model(read_identity_from_schema(schema), identity)
    )


def read_identity(path: Path) -> dict[str, Any]:
    """The identity recorded in the embeddings file ``path`` (``{}`` when it has none)."""
    return read_identity_from_schema(pq.read_schema(path))


def read_identity_from_schema(schema: pa.Schema) -> dict[str, Any]:
    """The identity recorded in an embeddings file's schema (``{}`` when it has none)."""
    return json.loads((schema.metadata or {}).get(MODEL_IDENTITY_KEY, b"{}").decode())


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two identities name the same model, wherever each was loaded."""
    return bool(a) and portable(a) == portable(b)


def shared_identity(shards: Iterable[tuple[str, Path]]) -> dict[str, Any]:
    """The portable identity all ``(name, path)`` shards were embedded with; raises
    :class:`ModelMismatchError` when they differ."""
    identities = {name: read_identity(path) for name, path in shards}
    distinct = {json.dumps(portable(i), sort_keys=True) for i in identities.values()}
    if len(distinct) > 1:
        raise ModelMismatchError(identities)
    return portable(next(iter(identities.values()), {}))
