"""Query a CLIP index: by text, image bytes, image URL or embedding (see ``ClipSearcher``)."""

from clip_assets.search.layout import IndexFiles, LayoutError, locate
from clip_assets.search.query_model import QueryModel
from clip_assets.search.searcher import ClipSearcher, SearchResult

__all__ = ["ClipSearcher", "IndexFiles", "LayoutError", "QueryModel", "SearchResult", "locate"]
