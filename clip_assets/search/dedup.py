"""Near-duplicate removal over one ranked result list, by the rule clip-retrieval's back end uses.

Two results are near-duplicates when the cosine of their embeddings is at least
``NEAR_DUPLICATE_COSINE`` (0.94, ``clip back``'s threshold). Near-duplicates chain: a~b and b~c
put a, b and c in one group even when a and c are further apart. Of each group only the
best-ranked result is kept, so the answer is what ``clip back`` returns for the same list.

Guarantees: memory stays near ``max_cells`` similarities whatever the list length (the
pairwise products are taken in row blocks and reduced to group labels block by block).
"""

from __future__ import annotations

import numpy as np

NEAR_DUPLICATE_COSINE = 0.94
#: Similarities held at once: 4M float32 is 16 MB.
MAX_CELLS = 4_000_000


def first_of_each_group(
    embeddings: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE, max_cells: int = MAX_CELLS
) -> np.ndarray:
    """A boolean mask over ``embeddings`` (rows in rank order, any norm): ``True`` for the
    best-ranked row of each group of near-duplicates. An all-zero row is nobody's duplicate."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1, norms)
    n = len(x)
    roots = np.arange(n)
    rows = max(1, max_cells // max(n, 1))
    for start in range(0, n, rows):
        above = x[start : start + rows] @ x.T >= threshold
        i, j = np.nonzero(above)
        later = j > i + start  # each pair once; a row is trivially its own duplicate
        roots = _merge(roots, i[later] + start, j[later])
    return roots == np.arange(n)


def _merge(roots: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find over the pairs (a, b): every row ends up pointing at the smallest row of its
    group (so the group's best-ranked row is the one that points at itself)."""
    while a.size:
        ra, rb = roots[a], roots[b]
        apart = ra != rb
        if not apart.any():
            break
        a, b, ra, rb = a[apart], b[apart], ra[apart], rb[apart]
        # Hang the larger root under the smaller; pairs left over merge on the next pass.
        np.minimum.at(roots, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # path halving until every row points at a root
            parents = roots[roots]
            if np.array_equal(parents, roots):
                break
            roots = parents
    return roots
