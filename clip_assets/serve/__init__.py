"""The HTTP search service: clip-retrieval's back-end API and a web page (see ``app``);
``startup.serve`` is what ``clip-assets serve`` runs.

Names are imported on first use, so ``clip_assets.serve.limits`` (whose defaults the CLI shows
in its help) loads without starlette, faiss or torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name -> the module of this package that defines it.
_EXPORTS = {
    "ApiError": "knn_request",
    "Limits": "limits",
    "ModelUnavailable": "startup",
    "SearchService": "app",
    "create_app": "app",
    "serve": "startup",
    "warm_up": "startup",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
