"""Search-time parameters of a faiss index: which ones exist, setting them, and proving they took.

autofaiss picks its tuning branch from the index key with regexes, so an ``IVF.._HNSW..,PQ..`` key
is tuned as plain HNSW and keeps ``nprobe=1``. Here the parameters come from the index object
itself (a refine stage? an IVF layer? an HNSW graph? an HNSW coarse quantizer?), and every value
set is read back from the index, so a parameter faiss silently ignored is an error, not a bad
recall. A two-stage index (``IndexRefine``: a first stage re-ranked by better codes) adds
``k_factor_rf``, faiss's name for how many first-stage results per wanted neighbour it re-ranks.
"""

from __future__ import annotations

from collections.abc import Mapping

import faiss

# Grids the tuner walks from cheap to expensive; recall grows (nearly) monotonically along them.
EF_SEARCH_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE_GRID = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# First-stage results re-ranked per neighbour asked for; 1 re-ranks the top k only. Up to 512:
# at 4M CLIP-like vectors a popular sub-concept holds thousands of near-equidistant vectors,
# and 64 left the true top 10 outside the re-ranked set for 10% of image queries.
K_FACTOR_GRID = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# An HNSW coarse quantizer must return at least nprobe good centroids; autofaiss uses 2 * nprobe.
MIN_QUANTIZER_EF_SEARCH = 16


OWNED = frozenset({"nprobe", "efSearch", "quantizer_efSearch", "k_factor_rf"})


def _refine(index: faiss.Index) -> faiss.IndexRefine | None:
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexRefine) else None


def _hnsw(index: faiss.Index) -> faiss.IndexHNSW | None:
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    return faiss.try_extract_index_ivf(index)


def _top_level(index: faiss.Index) -> faiss.Index:
    """The index under ``IndexPreTransform`` wrappers (OPQ, PCA, ...)."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def current_search_params(index: faiss.Index) -> dict[str, int]:
    """The search parameters in effect on ``index``, read from the index object."""
    refine = _refine(index)
    if refine is not None:
        first_stage = current_search_params(faiss.downcast_index(refine.base_index))
        return {**first_stage, "k_factor_rf": int(refine.k_factor)}
    ivf = _ivf(index)
    if ivf is not None:
        params = {"nprobe": int(ivf.nprobe)}
        quantizer = _hnsw(ivf.quantizer)
        if quantizer is not None:
            params["quantizer_efSearch"] = int(quantizer.hnsw.efSearch)
        return params
    hnsw = _hnsw(_top_level(index))
    if hnsw is not None:
        return {"efSearch": int(hnsw.hnsw.efSearch)}
    return {}


def param_string(params: Mapping[str, int]) -> str:
    """``faiss.ParameterSpace`` syntax, e.g. ``nprobe=16,quantizer_efSearch=32`` (autofaiss's
    ``index_param`` field uses the same syntax)."""
    return ",".join(f"{name}={value}" for name, value in params.items())


def parse_param_string(text: str) -> dict[str, float]:
    """Inverse of :func:`param_string`; tolerates autofaiss's extra keys such as ``ht=2048``."""
    params: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        number = float(value)
        params[name] = int(number) if number.is_integer() else number
    return params


def apply_search_params(index: faiss.Index, params: Mapping[str, float] | str) -> dict[str, int]:
    """Set ``params`` through ``faiss.ParameterSpace`` and verify they took.

    Returns the parameters now in effect. Raises ``RuntimeError`` when a value we own (nprobe,
    efSearch, quantizer_efSearch) reads back different, e.g. a key faiss applied to the wrong
    sub-index.
    """
    wanted = parse_param_string(params) if isinstance(params, str) else dict(params)
    if wanted:
        faiss.ParameterSpace().set_index_parameters(index, param_string(wanted))
    effective = current_search_params(index)
    # ParameterSpace sends a bare efSearch to an IVF's HNSW coarse quantizer (autofaiss's
    # "nprobe=..,efSearch=..,ht=.." strings rely on it).
    quantizer_alias = "efSearch" not in effective and "quantizer_efSearch" in effective
    for name, value in wanted.items():
        read_as = "quantizer_efSearch" if name == "efSearch" and quantizer_alias else name
        if read_as in OWNED and read_as not in effective:
            raise RuntimeError(f"{name} does not apply to this index ({effective})")
        if read_as in effective and effective[read_as] != value:
            raise RuntimeError(f"{name}={value} did not take: index reports {effective}")
    return effective


def search_grid(index: faiss.Index) -> list[list[dict[str, int]]]:
    """Search settings to try, as rows each ordered cheapest first (recall grows along a row).

    One row per refine ``k_factor_rf`` for a two-stage index, the most re-ranking first: it
    meets a recall target with the least first-stage effort, and its latency there bounds how
    far the cheaper rows need walking. A single row otherwise, ``[[{}]]`` for exact indexes.
    """
    refine = _refine(index)
    if refine is None:
        return [_first_stage_params(index)]
    first_stage = _first_stage_params(faiss.downcast_index(refine.base_index))
    return [
        [{**params, "k_factor_rf": factor} for params in first_stage]
        for factor in sorted(K_FACTOR_GRID, reverse=True)
    ]


def _first_stage_params(index: faiss.Index) -> list[dict[str, int]]:
    ivf = _ivf(index)
    if ivf is not None:
        nprobes = [p for p in NPROBE_GRID if p < ivf.nlist] + [int(ivf.nlist)]
        if _hnsw(ivf.quantizer) is None:
            return [{"nprobe": p} for p in nprobes]
        return [
            {"nprobe": p, "quantizer_efSearch": max(2 * p, MIN_QUANTIZER_EF_SEARCH)}
            for p in nprobes
        ]
    if _hnsw(_top_level(index)) is not None:
        return [{"efSearch": ef} for ef in EF_SEARCH_GRID]
    return [{}]
