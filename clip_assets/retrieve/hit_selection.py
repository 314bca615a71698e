"""Which of each query's neighbours a retrieval keeps: floor, deduplication, cap.

``HitSelector.select`` reads one batch's ``(similarities, ids)`` from ``ClipSearcher.nearest``
(rows in query order, columns best first; with near-duplicate detection also the neighbours'
vectors, from ``nearest_with_vectors``) and returns the kept hits as flat arrays grouped by
query, in rank order, with counts of what each filter dropped. The selector outlives the batch:
deduplication is across the whole result, first come first kept (earlier queries win).

How duplicates are found, with memory that does not grow with the number of queries:

- every faiss id gets an *image key* (``IdMapping.value_codes("url")``: rows sharing a url
  share a key), and one bit per key records that the image was kept;
- near-identical images: when a hit is kept, its own nearest neighbours in the index at or
  above ``duplicate_similarity`` are marked as shadowed, and a candidate is a duplicate when it
  is shadowed or one of its own such neighbours was kept. The neighbours come from one batched
  search of the candidates' stored vectors, so near-duplicates are found as reliably as the
  index finds near neighbours, and the cost is one extra search per candidate, paid only when
  near-duplicate detection is on. An index that cannot give its vectors back
  (``ClipSearcher.dedup_method`` "url": fast-scan codes) deduplicates by id and url only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.search import ClipSearcher


@dataclass
class Selection:
    """Kept hits: ``rows[j]`` is the batch row (query) of hit j, ``ranks`` start at 1."""

    rows: np.ndarray
    ranks: np.ndarray
    ids: np.ndarray
    similarities: np.ndarray
    dropped: Counter[str] = field(default_factory=Counter)


class HitSelector:
    """Applies ``settings``' filters to batch after batch of one retrieval run."""

    def __init__(self, searcher: ClipSearcher, settings: RetrievalSettings) -> None:
        self._searcher = searcher
        self._settings = settings
        self._keys: np.ndarray | None = None
        #: How duplicates are told apart: "off", "url" (ids and urls) or "embedding" as well.
        self.method = "off"
        if settings.deduplicate:
            near = settings.near_duplicates and searcher.dedup_method == "embedding"
            self.method = "embedding" if near else "url"
            self._keys = searcher.mapping.value_codes("url")
            self._kept = np.zeros(int(self._keys.max(initial=0)) + 1, dtype=bool)
            self._shadow = np.zeros_like(self._kept)

    @property
    def needs_vectors(self) -> bool:
        """Whether ``select`` needs the neighbours' vectors (near-duplicate detection)."""
        return self.method == "embedding"

    def select(
        self, similarities: np.ndarray, ids: np.ndarray, vectors: np.ndarray | None = None
    ) -> Selection:
        """The hits of one batch that pass the floor, deduplication and the cap; ``vectors``
        (shape ``ids.shape + (dim,)``) are required when ``needs_vectors``."""
        found = ids >= 0
        passing = found.copy()
        if self._settings.min_similarity is not None:
            passing &= similarities >= self._settings.min_similarity
        dropped: Counter[str] = Counter(below_floor=int(found.sum() - passing.sum()))
        if self._keys is None:
            selection = self._capped(passing, similarities, ids)
        else:
            selection = self._deduplicated(self._keys, passing, similarities, ids, vectors)
        selection.dropped.update(dropped)
        return selection

    def _capped(self, passing: np.ndarray, similarities: np.ndarray, ids: np.ndarray) -> Selection:
        ranks = np.cumsum(passing, axis=1)
        keep = passing & (ranks <= (self._settings.max_per_query or ids.shape[1]))
        rows, columns = np.nonzero(keep)  # row-major: grouped by query, best first
        return Selection(
            rows=rows,
            ranks=ranks[rows, columns],
            ids=ids[rows, columns],
            similarities=similarities[rows, columns],
            dropped=Counter(over_cap=int(passing.sum() - keep.sum())),
        )

    def _deduplicated(
        self,
        keys: np.ndarray,
        passing: np.ndarray,
        similarities: np.ndarray,
        ids: np.ndarray,
        vectors: np.ndarray | None,
    ) -> Selection:
        kept, shadow = self._kept, self._shadow
        # Images kept by earlier batches need no neighbour search: they are duplicates already.
        candidate_keys = keys[np.where(passing, ids, 0)]
        fresh = passing & ~kept[candidate_keys] & ~shadow[candidate_keys]
        near: dict[int, np.ndarray] = {}
        if self.needs_vectors and fresh.any():
            if vectors is None:
                raise ValueError("near-duplicate detection needs the neighbours' vectors")
            near = self._near_keys(keys, ids[fresh], vectors[fresh])
        cap = self._settings.max_per_query or ids.shape[1]
        rows, ranks, columns = [], [], []
        dropped: Counter[str] = Counter()
        for row in range(ids.shape[0]):
            count = 0
            for column in np.flatnonzero(passing[row]):
                if count == cap:
                    dropped["over_cap"] += 1
                    continue
                faiss_id = int(ids[row, column])
                key = keys[faiss_id]
                neighbours = near.get(faiss_id)
                if kept[key] or shadow[key] or (neighbours is not None and kept[neighbours].any()):
                    dropped["duplicate"] += 1
                    continue
                kept[key] = True
                if neighbours is not None:
                    shadow[neighbours] = True
                count += 1
                rows.append(row)
                ranks.append(count)
                columns.append(column)
        rows_array, columns_array = np.array(rows, np.int64), np.array(columns, np.int64)
        return Selection(
            rows=rows_array,
            ranks=np.array(ranks, np.int64),
            ids=ids[rows_array, columns_array],
            similarities=similarities[rows_array, columns_array],
            dropped=dropped,
        )

    def _near_keys(
        self, keys: np.ndarray, candidates: np.ndarray, vectors: np.ndarray
    ) -> dict[int, np.ndarray]:
        """Faiss id -> image keys of its near-identical neighbours, for each candidate."""
        unique, first = np.unique(candidates, return_index=True)
        if unique.size == 0:
            return {}
        depth = min(self._settings.duplicate_neighbours + 1, len(self._searcher))
        similarities, neighbours = self._searcher.nearest(vectors[first], depth)
        close = (neighbours >= 0) & (similarities >= self._settings.duplicate_similarity)
        close &= neighbours != unique[:, None]
        return {int(faiss_id): keys[neighbours[i][close[i]]] for i, faiss_id in enumerate(unique)}
