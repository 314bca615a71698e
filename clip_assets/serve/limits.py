"""``Limits``: every bound the search service puts on one request and on all of them together.

Image bounds are the downloader's own (``DownloadSettings``: ``max_body_bytes``,
``max_pixels``, ``total_timeout_s``), so a query image is held to exactly what an indexed image
was held to.
"""

from __future__ import annotations

from dataclasses import dataclass

from clip_assets.download.download_settings import DownloadSettings

_DOWNLOAD = DownloadSettings()


@dataclass(frozen=True)
class Limits:
    """Bounds on requests.

    Per request: ``max_k`` results; an image (uploaded or fetched) of at most
    ``max_image_bytes`` and ``max_pixels``; ``fetch_deadline_s`` for the whole ``image_url``
    fetch; ``body_timeout_s`` to receive the request body.
    Together: ``max_running`` expensive requests (``/knn-service``, ``/metadata``) at once,
    ``max_waiting`` more queued for a turn; beyond that a request is answered 503 at once
    with ``Retry-After: retry_after_s``.
    """

    max_k: int = 10_000
    max_image_bytes: int = _DOWNLOAD.max_body_bytes
    max_pixels: int = _DOWNLOAD.max_pixels
    fetch_deadline_s: float = _DOWNLOAD.total_timeout_s
    body_timeout_s: float = 30.0
    max_running: int = 4
    max_waiting: int = 32
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if self.max_running < 1 or self.max_waiting < 0:
            raise ValueError("max_running must be at least 1 and max_waiting not negative")

    @property
    def max_body_bytes(self) -> int:
        """A base64 image is 4/3 of its bytes; leave room for the other fields."""
        return self.max_image_bytes * 4 // 3 + 1024 * 1024
