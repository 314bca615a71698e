"""The HTTP search service: clip-retrieval's back-end API and a web page (see ``app``)."""

from clip_assets.serve.app import SearchService, create_app
from clip_assets.serve.knn_request import ApiError, Limits

__all__ = ["ApiError", "Limits", "SearchService", "create_app"]
