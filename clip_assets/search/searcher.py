"""``ClipSearcher``: k-nearest-neighbour search over one CLIP index by text, image or embedding.

Opens every layout ``layout.locate`` knows (our storage, our release, Fondant's, clip back's)
from a local folder or a Hugging Face dataset repo. Queries are L2-normalised before searching,
so on an inner-product index of unit vectors the similarity is the cosine. Fondant's index
holds un-normalised vectors: there the score is the inner product with a unit query (the
cosine times the stored vector's norm), ranked exactly as Fondant's own index ranks it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from clip_assets.search.index_reader import read_index, similarity
from clip_assets.search.layout import IndexFiles, download_from_hub, locate
from clip_assets.search.mapping_reader import IdMapping
from clip_assets.search.query_model import QueryModel, load_encoder

#: How deep deduplicating searches may look, in multiples of k.
DEDUP_FETCH_FACTOR = 16


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
    ) -> None:
        """Wrap an open ``index`` and its ``mapping``; ``encoder`` (a ``ClipEncoder``) skips
        loading ``model``, e.g. to share one encoder between several indices."""
        self.index = index
        self.mapping = mapping
        self.model = model or QueryModel()
        self.infos = infos or {}
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
        return cls(index, mapping, model=chosen, encoder=encoder, infos=infos)

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

    def search(
        self, embeddings: np.ndarray, k: int = 10, *, deduplicate: bool = False
    ) -> list[list[SearchResult]]:
        """The ``k`` nearest neighbours of each row of ``embeddings`` (shape ``(n, dim)``).

        With ``deduplicate``, a result whose url or uid already appeared higher in the same
        list is dropped and the list is refilled from further neighbours (looking at most
        ``DEDUP_FETCH_FACTOR * k`` deep, so a heavily repeated url cannot make one query scan
        the whole index). Lists are shorter than ``k`` only when the index runs out.
        """
        queries = self._prepare(embeddings)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in queries]
        deepest = min(len(self), DEDUP_FETCH_FACTOR * k) if deduplicate else k
        fetch = min(deepest, 2 * k) if deduplicate else k
        while True:
            scores, ids = self.index.search(queries, fetch)
            results = [
                self._results(s, i, k, deduplicate) for s, i in zip(scores, ids, strict=True)
            ]
            if fetch >= deepest or all(len(r) == k for r in results):
                return results
            fetch = min(deepest, 4 * fetch)

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
        """Search by encoded image files (JPEG, PNG, WebP... bytes)."""
        if not images:
            return []
        return self.search(self.encoder.encode_images(list(images)), k, deduplicate=deduplicate)

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

    def _results(
        self, scores: np.ndarray, ids: np.ndarray, k: int, deduplicate: bool
    ) -> list[SearchResult]:
        found = ids >= 0  # faiss pads with -1 when fewer than ``fetch`` neighbours exist
        ids, scores = ids[found], similarity(self.index, scores[found])
        rows = self.mapping.rows(ids)
        results: list[SearchResult] = []
        seen: set[str] = set()
        for i, score, row in zip(ids, scores, rows, strict=True):
            keys = {f"url:{row.url}", f"uid:{row.uid}"} - {"url:None", "uid:None"}
            if deduplicate and keys & seen:
                continue
            seen |= keys
            results.append(SearchResult(int(i), float(score), row.url, row.uid, row.caption))
            if len(results) == k:
                break
        return results
