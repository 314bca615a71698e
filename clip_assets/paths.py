"""Where each stage's files live below the storage root (DESIGN.md, "Storage layout")."""

from __future__ import annotations


def manifest(ds: str) -> str:
    """The partition manifest: partition key -> source file, version and row range."""
    return f"{ds}/source/partitions.json"


def metadata(ds: str, key: str) -> str:
    return f"{ds}/metadata/{key}.parquet"


def images(ds: str, key: str) -> str:
    return f"{ds}/images/{key}.parquet"


def embeddings(ds: str, key: str) -> str:
    return f"{ds}/embeddings/{key}.parquet"


def index_dir(ds: str) -> str:
    """Holds ``faiss``, ``index_infos.json``, ``shards.json`` and ``model.json``."""
    return f"{ds}/index"


def id_mapping_dir(ds: str) -> str:
    return f"{ds}/id_mapping"


def release_dir(ds: str) -> str:
    """Exactly what is uploaded to the Hub."""
    return f"{ds}/release"


def key_of(path: str) -> str:
    """The partition key of a per-partition file path."""
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")
