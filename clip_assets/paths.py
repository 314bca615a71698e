"""The storage root and where each stage's files live below it (docs/architecture.md,
"Storage layout"). Every path an asset, a sensor or the driver reads or writes is built here,
and the index folder's file names are defined here for the index stage to use. No heavy
imports: the command line reads the root from here before anything loads."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "CLIP_ASSETS_ROOT"
CACHE_ENV = "CLIP_ASSETS_CACHE"
#: The index file (raw ``faiss.write_index``), as autofaiss and the Fondant release name it.
INDEX_NAME = "faiss"
#: autofaiss's fields plus our measurements (``clip_assets.index.infos``).
INFOS_NAME = "index_infos.json"
#: The id assignment: partition order and row counts (``clip_assets.index.shards``).
SHARD_LIST_NAME = "shards.json"
#: Beside the index: the model identity the vectors were embedded with (search reads it).
MODEL_NAME = "model.json"
#: A retrieval's outputs (``clip_assets.retrieve``): the hits, their Fondant view, their images.
HITS_NAME = "hits.parquet"
FONDANT_NAME = "fondant.parquet"
RETRIEVED_IMAGES_NAME = "images.parquet"
#: Files of the index folder, in upload order: ``index_infos.json`` last, so a reader that
#: sees the new infos also sees the index they describe.
INDEX_FILES = (INDEX_NAME, SHARD_LIST_NAME, MODEL_NAME, INFOS_NAME)


def storage_root() -> str:
    """The storage root: ``$CLIP_ASSETS_ROOT`` (a local folder or ``gs://bucket/prefix``),
    else ``./data``."""
    return os.environ.get(ROOT_ENV, "data")


def cache_dir() -> Path:
    """Local cache: copies of ``gs://`` source files, and scratch space when the root is a
    bucket (``$CLIP_ASSETS_CACHE``, else ``~/.cache/clip-assets``)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "clip-assets")).expanduser()


def manifest(ds: str) -> str:
    """The partition manifest: partition key -> source file, version and row range."""
    return f"{ds}/source/partitions.json"


def metadata_dir(ds: str) -> str:
    return f"{ds}/metadata"


def images_dir(ds: str) -> str:
    return f"{ds}/images"


def embeddings_dir(ds: str) -> str:
    return f"{ds}/embeddings"


def metadata(ds: str, key: str) -> str:
    return f"{metadata_dir(ds)}/{key}.parquet"


def images(ds: str, key: str) -> str:
    return f"{images_dir(ds)}/{key}.parquet"


def embeddings(ds: str, key: str) -> str:
    return f"{embeddings_dir(ds)}/{key}.parquet"


def index_dir(ds: str) -> str:
    """Holds ``INDEX_FILES``."""
    return f"{ds}/index"


def index_file(ds: str, name: str) -> str:
    """One of ``INDEX_FILES``."""
    return f"{index_dir(ds)}/{name}"


def shard_list(ds: str) -> str:
    """The index's shard list: which partitions it holds, in faiss id order."""
    return index_file(ds, SHARD_LIST_NAME)


def id_mapping_dir(ds: str) -> str:
    return f"{ds}/id_mapping"


def id_mapping_name(number: int) -> str:
    """The name of the id mapping's ``number``-th file (ids in file order)."""
    return f"{number:05d}.parquet"


def release_dir(ds: str) -> str:
    """Exactly what is uploaded to the Hub."""
    return f"{ds}/release"


def retrieval_dir(ds: str, query_set: str) -> str:
    """The retrieval of one named query set: ``HITS_NAME`` and, when made, the others."""
    return f"{ds}/retrieval/{query_set}"


def retrieval_file(ds: str, query_set: str, name: str) -> str:
    return f"{retrieval_dir(ds, query_set)}/{name}"


def key_of(path: str) -> str:
    """The partition key of a per-partition file path."""
    return path.rsplit("/", 1)[-1].removesuffix(".parquet")
