"""Open a faiss index file for querying: memory-mapped where possible, search params applied.

A DataComp-small index is 2.5 GB; memory-mapping lets the page cache hold it and several
processes share it. Files named ``faiss`` (our storage, our release, Fondant's) open through
``clip_assets.index.load.open_index``, which also applies and verifies the search parameters
recorded in ``index_infos.json`` (``index_param``, ours or autofaiss's). clip back's
``image.index`` has no infos beside it and opens with faiss's defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faiss

from clip_assets.index.load import MMAP_FLAGS, open_index
from clip_assets.paths import INDEX_NAME

LOG = logging.getLogger(__name__)


def read_index(path: str | Path, *, mmap: bool = True) -> faiss.Index:
    """Open the index file ``path`` (memory-mapped read-only when ``mmap``) for search."""
    path = Path(path)
    if path.name == INDEX_NAME:
        return open_index(path.parent, mmap=mmap)
    if mmap:
        try:
            return faiss.read_index(str(path), MMAP_FLAGS)
        except RuntimeError as error:
            # Some index types cannot be mapped by some faiss builds; a full read still works.
            LOG.info("memory-mapping %s failed (%s); reading it into memory", path, error)
    return faiss.read_index(str(path))


def similarity(index: faiss.Index, distances: Any) -> Any:
    """Turn faiss scores into similarities: inner product as is, L2 on unit vectors to cosine."""
    if index.metric_type == faiss.METRIC_L2:
        return 1.0 - distances / 2.0
    return distances
