"""Every knob of a retrieval run in one typed, frozen object (``RetrievalSettings``).

Read by every module of this package; holds no live objects, so the asset's config, the CLI
flags and the tests all build the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Default cosine at or above which two images count as near-identical. Copies of one picture
#: (resized, recompressed, re-hosted) score about 0.97 and up with CLIP ViT-B/32; different
#: photographs of the same subject rarely pass 0.95.
DUPLICATE_SIMILARITY = 0.96


@dataclass(frozen=True)
class RetrievalSettings:
    """How many neighbours to look at per query, and which of them to keep.

    ``k``: neighbours searched per query (Fondant's ``num_images``). Of those, in rank order:
    ``min_similarity`` drops hits below the floor; ``deduplicate`` drops a hit whose image was
    already kept anywhere earlier in the result (queries in query-set order): the same faiss
    id or url, or, unless ``duplicate_similarity`` is ``None``, an image at least that
    cosine-similar (found among the index's ``duplicate_neighbours`` nearest neighbours of
    each hit); ``max_per_query`` keeps at most that many of what is left (so ``k=60,
    max_per_query=20`` gives 20 distinct images where duplicates are common).

    ``batch_size`` queries are embedded, searched and written together. Image-URL queries are
    fetched ``fetch_concurrency`` at a time, each capped at ``max_image_bytes``, with the
    downloader's address checks (``allow_private_urls`` lifts them: tests, a local demo);
    every image query is refused above ``max_image_pixels`` (decompression bombs).
    """

    k: int = 20
    min_similarity: float | None = None
    max_per_query: int | None = None
    deduplicate: bool = False
    duplicate_similarity: float | None = DUPLICATE_SIMILARITY
    duplicate_neighbours: int = 16
    batch_size: int = 1024
    fetch_concurrency: int = 16
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 89_478_485  # Pillow's own bomb threshold, as in the images stage
    allow_private_urls: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.max_per_query is not None and self.max_per_query < 1:
            raise ValueError(f"max_per_query must be at least 1, got {self.max_per_query}")
        if self.min_similarity is not None and not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must lie in [-1, 1], got {self.min_similarity}")
        if self.duplicate_similarity is not None and not 0.0 < self.duplicate_similarity <= 1.0:
            raise ValueError(
                f"duplicate_similarity must lie in (0, 1], got {self.duplicate_similarity}"
            )
        for name in ("duplicate_neighbours", "batch_size", "fetch_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_image_bytes < 1 or self.max_image_pixels < 1:
            raise ValueError("max_image_bytes and max_image_pixels must be at least 1")

    @property
    def near_duplicates(self) -> bool:
        """Whether deduplication compares image embeddings, not just ids and urls."""
        return self.deduplicate and self.duplicate_similarity is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (recorded in the output file and the asset's metadata)."""
        return asdict(self)
