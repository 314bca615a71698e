"""The HTTP search service: clip-retrieval's back-end API and a web page (see ``app``);
``startup.serve`` is what ``clip-assets serve`` runs."""

from clip_assets.serve.app import SearchService, create_app
from clip_assets.serve.knn_request import ApiError
from clip_assets.serve.limits import Limits
from clip_assets.serve.startup import ModelUnavailable, serve, warm_up

__all__ = [
    "ApiError",
    "Limits",
    "ModelUnavailable",
    "SearchService",
    "create_app",
    "serve",
    "warm_up",
]
