"""Index stage: build, tune and measure the faiss index, map its ids, check its quality.

Plain Python (no Dagster); the ``faiss_index`` and ``id_mapping`` assets call these functions.
"""

from clip_assets.index.build import build_index
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.load import open_index
from clip_assets.index.mapping import build_id_mapping
from clip_assets.index.shards import EmbeddingShard
from clip_assets.index.verification import (
    CheckResult,
    check_embeddings,
    check_id_mapping,
    check_index_size,
    check_recall,
)

__all__ = [
    "CheckResult",
    "EmbeddingShard",
    "IndexSettings",
    "build_id_mapping",
    "build_index",
    "check_embeddings",
    "check_id_mapping",
    "check_index_size",
    "check_recall",
    "open_index",
]
