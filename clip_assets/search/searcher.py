"""``ClipSearcher``: k-nearest-neighbour search over one CLIP index by text, image or embedding.

Opens every layout ``layout.locate`` knows (our storage, our release, Fondant's, clip back's)
from a local folder or a Hugging Face dataset repo. Queries are L2-normalised before searching,
so on an inner-product index of unit vectors the similarity is the cosine. Fondant's index
holds un-normalised vectors: there the score is the inner product with a unit query (the
cosine times the stored vector's norm), ranked exactly as Fondant's own index ranks it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from clip_assets.download.decode_guard import decode_checked
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.search.dedup import first_of_each_group
from clip_assets.search.index_reader import read_index, similarity
from clip_assets.search.layout import IndexFiles, download_from_hub, locate
from clip_assets.search.mapping_reader import IdMapping
from clip_assets.search.query_model import QueryModel, load_encoder

#: How deep deduplicating searches may refill: in multiples of k, and in all. Grouping costs
#: candidates squared (4,096 candidates: 17 GFLOP), so past that only k are looked at, which
#: is exactly clip back's single pass.
DEDUP_FETCH_FACTOR = 4
MAX_DEDUP_CANDIDATES = 4_096
#: Query images are decoded under the downloader's pixel limit.
MAX_PIXELS = DownloadSettings().max_pixels


@dataclass(frozen=True)
class SearchResult:
    """One neighbour: faiss id, similarity and the row's metadata (``None`` where unknown)."""

    id: int
    similarity: float
    url: str | None
    uid: str | None
    caption: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class ClipSearcher:
    """Searches one index; the CLIP model loads on the first text or image query."""

    def __init__(
        self,
        index: faiss.Index,
        mapping: IdMapping,
        *,
        model: QueryModel | None = None,
        encoder: Any = None,
        infos: dict[str, Any] | None = None,
        index_path: Path | None = None,
    ) -> None:
        """Wrap an open ``index`` (read from ``index_path``, if from a file) and its
        ``mapping``; ``encoder`` (a ``ClipEncoder``) skips loading ``model``, e.g. to share
        one encoder between several indices."""
        self.index = index
        self.mapping = mapping
        self.model = model or QueryModel()
        self.infos = infos or {}
        self.index_path = index_path
        self._encoder = encoder

    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        mmap: bool = True,
        model: QueryModel | None = None,
        encoder: Any = None,
    ) -> ClipSearcher:
        """Open the index in a local ``folder`` of any known layout.

        ``model`` overrides the folder's ``model.json`` (see ``clip_assets.search.query_model``).
        """
        files = locate(folder)
        return cls.from_files(files, mmap=mmap, model=model, encoder=encoder)

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> ClipSearcher:
        """Download (or reuse the cached) index files of a Hub dataset repo and open them."""
        folder = download_from_hub(repo_id, revision=revision, cache_dir=cache_dir)
        return cls.open(folder, **kwargs)

    @classmethod
    def from_files(
        cls,
        files: IndexFiles,
        *,
        mmap: bool = True,
        model: QueryModel | None = None,
        encoder: Any = None,
    ) -> ClipSearcher:
        """Open located ``files``."""
        index = read_index(files.index, mmap=mmap)
        infos = files.read_infos()
        mapping = IdMapping.read(files.id_mapping)
        if len(mapping) < index.ntotal:
            raise ValueError(
                f"{files.id_mapping} maps {len(mapping)} ids but the index holds {index.ntotal}"
            )
        chosen = model or QueryModel.from_json(files.read_model())
        return cls(
            index, mapping, model=chosen, encoder=encoder, infos=infos, index_path=files.index
        )

    @property
    def dim(self) -> int:
        """Dimension of the indexed vectors (and of query embeddings)."""
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def encoder(self) -> Any:
        """The CLIP encoder given at construction, else ``model``'s (loaded on first use)."""
        if self._encoder is None:
            self._encoder = load_encoder(self.model)
        return self._encoder

    @property
    def encoder_loaded(self) -> bool:
        """Whether text and image queries can run without loading a model first."""
        return self._encoder is not None

    def search(
        self, embeddings: np.ndarray, k: int = 10, *, deduplicate: bool = False
    ) -> list[list[SearchResult]]:
        """The ``k`` nearest neighbours of each row of ``embeddings`` (shape ``(n, dim)``).

        With ``deduplicate``, near-duplicates are removed as ``clip back`` removes them (see
        ``clip_assets.search.dedup``: cosine >= 0.94 between the indexed vectors, the
        best-ranked of each group kept), and the list is refilled from further neighbours,
        looking at most ``DEDUP_FETCH_FACTOR * k`` and ``MAX_DEDUP_CANDIDATES`` deep (but
        always ``k``). An
        index that cannot give its vectors back (``dedup_method`` "url") drops repeated urls
        and uids instead. Lists are shorter than ``k`` only when the index (or that depth)
        runs out.
        """
        queries = self._prepare(embeddings)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in queries]
        if deduplicate:
            return [self._unique_neighbours(query, k) for query in queries]
        scores, ids = self.index.search(queries, k)
        return [self._results(s, i) for s, i in zip(scores, ids, strict=True)]

    @cached_property
    def dedup_method(self) -> str:
        """How ``deduplicate`` tells duplicates: "embedding" (near-duplicate vectors, read back
        from the index) or "url" where the index cannot reconstruct its vectors (fast-scan
        codes without a refine stage)."""
        if len(self) == 0:
            return "embedding"
        probe = np.full((1, self.dim), self.dim**-0.5, dtype=np.float32)
        try:
            self.index.search_and_reconstruct(probe, 1)
        except RuntimeError:
            return "url"
        return "embedding"

    def nearest(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities (float32) and faiss ids (int64) of the ``k`` nearest neighbours of each
        row of ``embeddings``, both of shape ``(n, k)``, best first, in one batched faiss call.

        The arrays' form of ``search``, for callers that handle many queries at once: rows are
        padded with id -1 (similarity -inf) where the index holds fewer than ``k`` vectors.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores, ids = self.index.search(self._prepare(embeddings), k)
        return self._similarities(scores, ids), ids

    def nearest_with_vectors(
        self, embeddings: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``nearest`` plus the indexed vectors of the neighbours, shape ``(n, k, dim)``
        (approximations for compressed indexes); only where ``dedup_method`` is "embedding"."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores, ids, vectors = self.index.search_and_reconstruct(self._prepare(embeddings), k)
        return self._similarities(scores, ids), ids, vectors

    def search_texts(
        self, texts: list[str], k: int = 10, *, deduplicate: bool = False
    ) -> list[list[SearchResult]]:
        """Search by captions, embedded with the index's CLIP model."""
        if not texts:
            return []
        return self.search(self.encoder.encode_texts(list(texts)), k, deduplicate=deduplicate)

    def search_images(
        self, images: list[bytes], k: int = 10, *, deduplicate: bool = False
    ) -> list[list[SearchResult]]:
        """Search by encoded image files (JPEG, PNG, WebP... bytes); see ``embed_images``."""
        if not images:
            return []
        return self.search(self.embed_images(images), k, deduplicate=deduplicate)

    def embed_images(self, images: list[bytes], max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """Query vectors of encoded images, decoded under the downloader's pixel limit
        (``clip_assets.download.decode_guard``); raises ``ImageRefused`` for bad bytes."""
        return self.encoder.encode_pil([decode_checked(image, max_pixels) for image in images])

    def search_image_urls(
        self,
        urls: list[str],
        k: int = 10,
        *,
        deduplicate: bool = False,
        allow_private: bool = False,
        max_bytes: int | None = None,
    ) -> list[list[SearchResult]]:
        """Fetch each image URL (see ``clip_assets.search.query_image``) and search by its bytes."""
        from clip_assets.search.query_image import MAX_IMAGE_BYTES, fetch_image

        cap = max_bytes or MAX_IMAGE_BYTES
        images = [fetch_image(u, max_bytes=cap, allow_private=allow_private) for u in urls]
        return self.search_images(images, k, deduplicate=deduplicate)

    def metadata(self, ids: list[int]) -> list[dict[str, str | None]]:
        """``{url, caption, uid}`` of each faiss id; raises ``KeyError`` for unknown ids."""
        return [{"url": r.url, "caption": r.caption, "uid": r.uid} for r in self.mapping.rows(ids)]

    def _prepare(self, embeddings: np.ndarray) -> np.ndarray:
        queries = np.asarray(embeddings, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"query embeddings must have {self.dim} dimensions, got shape {queries.shape}"
            )
        if not np.isfinite(queries).all():
            raise ValueError("query embeddings contain NaN or infinity")
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError("a query embedding is all zeros")
        return np.ascontiguousarray(queries / norms)

    def _unique_neighbours(self, query: np.ndarray, k: int) -> list[SearchResult]:
        deepest = min(len(self), max(k, min(DEDUP_FETCH_FACTOR * k, MAX_DEDUP_CANDIDATES)))
        depth = min(deepest, 2 * k)
        while True:
            scores, ids, keep = self._candidates(query[None, :], depth)
            results = self._results(scores[keep][:k], ids[keep][:k])
            if len(results) == k or depth >= deepest:
                return results
            depth = min(deepest, 2 * depth)

    def _candidates(
        self, query: np.ndarray, depth: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``depth`` nearest (scores, ids) and a mask of the ones deduplication keeps."""
        if self.dedup_method == "embedding":
            scores, ids, vectors = self.index.search_and_reconstruct(query, depth)
            found = ids[0] >= 0  # faiss pads with -1 when fewer neighbours exist
            return scores[0][found], ids[0][found], first_of_each_group(vectors[0][found])
        scores, ids = self.index.search(query, depth)
        found = ids[0] >= 0
        ids = ids[0][found]
        seen: set[str] = set()
        keep = np.zeros(len(ids), dtype=bool)
        for n, row in enumerate(self.mapping.rows(ids)):
            keys = {f"url:{row.url}", f"uid:{row.uid}"} - {"url:None", "uid:None"}
            keep[n] = not keys & seen
            seen |= keys
        return scores[0][found], ids, keep

    def _similarities(self, scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return np.where(ids >= 0, similarity(self.index, scores), -np.inf).astype(np.float32)

    def _results(self, scores: np.ndarray, ids: np.ndarray) -> list[SearchResult]:
        found = ids >= 0  # faiss pads with -1 when fewer than ``k`` neighbours exist
        ids, scores = ids[found], similarity(self.index, scores[found])
        rows = self.mapping.rows(ids)
        return [
            SearchResult(int(i), float(score), row.url, row.uid, row.caption)
            for i, score, row in zip(ids, scores, rows, strict=True)
        ]
