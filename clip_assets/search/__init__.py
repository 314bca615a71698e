"""Query a CLIP index: by text, image bytes, image URL or embedding (see ``ClipSearcher``).

The names below load on first use (PEP 562), so importing a light module of this package
(``search.dedup``'s threshold, say, for a command's ``--help``) does not import faiss.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clip_assets.search.layout import IndexFiles, LayoutError, locate
    from clip_assets.search.query_model import QueryModel
    from clip_assets.search.searcher import ClipSearcher, SearchResult

_EXPORTS = {
    "ClipSearcher": "clip_assets.search.searcher",
    "SearchResult": "clip_assets.search.searcher",
    "IndexFiles": "clip_assets.search.layout",
    "LayoutError": "clip_assets.search.layout",
    "locate": "clip_assets.search.layout",
    "QueryModel": "clip_assets.search.query_model",
}

__all__ = ["ClipSearcher", "IndexFiles", "LayoutError", "QueryModel", "SearchResult", "locate"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
