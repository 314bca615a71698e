"""Two-stage index keys for a memory budget too small for float32 vectors, and their sizes.

Under such a budget autofaiss picks OPQ + IVF + PQ (``OPQ256_768,IVF16384_HNSW32,PQ256x8`` at
DataComp small): PQ codes alone cap recall@10 well below 0.95, and OPQ's training is the
slowest step of the build. The candidates here pair a fast first stage, IVF over 4-bit
fast-scan PQ codes (searched with SIMD lookup tables, so long lists are cheap), with a refine
stage that re-ranks the first stage's best ``k * k_factor_rf`` results with better codes: SQ8
(1 byte a dimension) or fp16 (2 bytes; lossless for embeddings stored as float16). A
single-stage IVF-SQ8 is a candidate only where no two-stage key fits: at 300k CLIP-like vectors
it measured p50 27 ms against 0.4 ms for the two-stage keys (it scans whole lists of 8-bit
codes; fast-scan compares 4-bit codes with SIMD lookups), so measuring it beside them only costs
build time. Which key is built is measured (``calibrate``), not decided here; this module only
says which fit the budget.
"""

from __future__ import annotations

import math
import re

from autofaiss.utils.cast import cast_memory_to_bytes

# First-stage PQ codes: dim / 8, dim / 4 or dim / 2 sub-quantizers of 4 bits (32, 64 or 128
# bytes at 512-d): the denser the data, the more a first stage must tell near neighbours apart.
FIRST_STAGE_DIVISORS = (8, 4, 2)
REFINE_CODES = {"SQ8": 1, "SQfp16": 2}  # bytes per dimension
ID_BYTES = 8  # IVF lists store an int64 id per vector
FAST_SCAN_BLOCK = 32  # fast-scan lists are padded to blocks of 32 codes
_LISTS = re.compile(r"IVF(\d+)")
_REFINE = re.compile(r",Refine\((\w+)\)$")


def ivf_lists(nb_vectors: int) -> int:
    """Coarse lists for ``nb_vectors``: the power of two nearest ``sqrt(n)`` (2,048 lists of
    ~2,000 vectors at 4M; fast-scan makes long lists cheap to scan, while k-means and the
    assignment of every vector cost in proportion to the list count), kept below ``n / 39`` so
    k-means has faiss's minimum per centroid."""
    lists = 2 ** round(math.log2(max(1.0, math.sqrt(nb_vectors))))
    while lists > 1 and lists * 39 > nb_vectors:
        lists //= 2
    return lists


def lists_of(key: str) -> int:
    """The IVF list count of ``key``."""
    match = _LISTS.search(key)
    if match is None:
        raise ValueError(f"{key} has no IVF layer")
    return int(match.group(1))


def with_lists(key: str, lists: int) -> str:
    """``key`` with its IVF list count replaced by ``lists``."""
    return _LISTS.sub(f"IVF{lists}", key, count=1)


def split_refine(key: str) -> tuple[str, str | None]:
    """``key``'s first stage and its refine codes (``None`` for a single-stage key)."""
    match = _REFINE.search(key)
    if match is None:
        return key, None
    return key[: match.start()], match.group(1)


def candidate_keys(nb_vectors: int, dim: int) -> list[str]:
    """Every two-stage candidate (and IVF-SQ8) for this size, smallest codes first."""
    lists = ivf_lists(nb_vectors)
    first_stages = [
        dim // divisor
        for divisor in FIRST_STAGE_DIVISORS
        if dim % divisor == 0 and dim // divisor >= 2
    ]
    keys = [f"IVF{lists},PQ{m}x4fs,Refine({codes})" for codes in REFINE_CODES for m in first_stages]
    keys.append(f"IVF{lists},SQ8")
    return sorted(keys, key=lambda key: estimated_bytes(key, nb_vectors, dim))


def estimated_bytes(key: str, nb_vectors: int, dim: int) -> int:
    """Size of the built index: codes, ids, padding and centroids (within a few percent of the
    written file for the keys of :func:`candidate_keys`)."""
    lists = lists_of(key)
    size = lists * dim * 4 + nb_vectors * ID_BYTES
    first_stage = re.search(r"PQ(\d+)x4fs", key)
    if first_stage:
        half_bytes = int(first_stage.group(1))
        padded = nb_vectors + lists * FAST_SCAN_BLOCK / 2  # half a block per list on average
        size += int(padded * half_bytes / 2)
    elif ",SQ8" in key:
        size += nb_vectors * dim
    codes = split_refine(key)[1]
    if codes:
        size += nb_vectors * dim * REFINE_CODES[codes]
    return int(size)


def fitting_keys(nb_vectors: int, dim: int, max_index_memory_usage: str) -> list[str]:
    """The candidates whose estimated size is within the budget (autofaiss's memory string):
    the two-stage ones, or IVF-SQ8 where none of them fits."""
    budget = cast_memory_to_bytes(max_index_memory_usage)
    fits = [
        key
        for key in candidate_keys(nb_vectors, dim)
        if estimated_bytes(key, nb_vectors, dim) <= budget
    ]
    return [key for key in fits if split_refine(key)[1]] or fits
