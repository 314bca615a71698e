"""Open a faiss index file for querying: memory-mapped where possible, search params applied.

A DataComp-small index is 2.5 GB; memory-mapping lets the page cache hold it and several
processes share it. The search parameters (``nprobe``, ``efSearch``) are not stored in the faiss
file itself, so they come from ``index_infos.json``: autofaiss writes them as the
``index_param`` string, which we read in every layout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faiss

LOG = logging.getLogger(__name__)


def read_index(path: str | Path, *, mmap: bool = True) -> faiss.Index:
    """Read ``path``, memory-mapped and read-only when ``mmap`` and the index type allow it."""
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as error:
            # Some index types cannot be mapped by some faiss builds; a full read still works.
            LOG.info("memory-mapping %s failed (%s); reading it into memory", path, error)
    return faiss.read_index(str(path))


def apply_search_params(index: faiss.Index, infos: dict[str, Any]) -> str | None:
    """Apply the ``index_param`` string of ``infos`` (``"nprobe=16,efSearch=32"``) to ``index``.

    Returns the string applied, or ``None`` when ``infos`` has none.
    """
    params = infos.get("index_param")
    if not params:
        return None
    faiss.ParameterSpace().set_index_parameters(index, str(params))
    return str(params)


def similarity(index: faiss.Index, distances: Any) -> Any:
    """Turn faiss scores into similarities: inner product as is, L2 on unit vectors to cosine."""
    if index.metric_type == faiss.METRIC_L2:
        return 1.0 - distances / 2.0
    return distances
