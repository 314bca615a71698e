"""Every knob of a retrieval run in one typed, frozen object (``RetrievalSettings``).

Read by every module of this package; holds no live objects, so the asset's config, the CLI
flags and the tests all build the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clip_assets.search.dedup import NEAR_DUPLICATE_COSINE

#: Default cosine at or above which two images count as near-identical: clip back's (and our
#: search service's) threshold, so a retrieval and a deduplicated search agree on "the same".
DUPLICATE_SIMILARITY = NEAR_DUPLICATE_COSINE


@dataclass(frozen=True)
class RetrievalSettings:
    """How many neighbours to look at per query, and which of them to keep.

    Filters apply to each query's neighbours in rank order: the floor, then deduplication,
    then the cap. ``k=60, max_per_query=20, deduplicate=True`` gives 20 distinct images per
    query where duplicates are common. Queries are handled in query-set order, so with
    deduplication an image goes to the first query that reaches it.

    Attributes:
        k: neighbours searched per query (Fondant's ``num_images``).
        min_similarity: drop hits below this similarity (cosine on unit vectors); ``None``
            keeps all.
        max_per_query: keep at most this many hits per query after the other filters;
            ``None`` keeps up to ``k``.
        deduplicate: drop a hit whose image was already kept anywhere earlier in the result:
            the same faiss id or url, or a near-identical image (``duplicate_similarity``).
        duplicate_similarity: cosine at or above which two images are the same picture;
            ``None`` compares ids and urls only.
        duplicate_neighbours: nearest neighbours of each hit, in the index, checked for
            near-identical copies.
        batch_size: queries embedded, searched and written together (one row group).
        fetch_concurrency: image-URL queries fetched at once.
        max_image_bytes: largest image a URL, file or bytes query may be.
        max_image_pixels: image queries above this many pixels are refused before decoding
            (decompression bombs).
        allow_private_urls: let image-URL queries reach private and loopback addresses
            (tests, a local demo); off, every redirect hop is checked.
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
