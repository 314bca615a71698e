"""Index folders in every layout the searcher opens, written with real faiss and parquet."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.schemas import ID_MAPPING_SCHEMA

DIM = 64
N = 300


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Random unit vectors: in 64 dimensions any two are far apart (cosine ~ 0 +- 0.15)."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rows(n: int) -> dict[str, list]:
    """Mapping rows; rows 0 and 1 share a url so deduplication has something to drop."""
    urls = [f"https://img.example/{i}.jpg" for i in range(n)]
    urls[1] = urls[0]
    return {
        "i": list(range(n)),
        "uid": [f"{i:032x}" for i in range(n)],
        "url": urls,
        "text": [f"caption {i}" for i in range(n)],
    }


def write_index(path: Path, vectors: np.ndarray, key: str = "Flat") -> None:
    """Build an inner-product ``key`` index over ``vectors`` and write it to ``path``."""
    index = faiss.index_factory(vectors.shape[1], key, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))


def write_mapping(folder: Path, table: pa.Table, parts: int = 2) -> None:
    """Split ``table`` over ``parts`` parquet files, written in reverse row order per name so
    the reader has to honour column ``i`` (where there is one) rather than file order."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        name = n if "i" not in table.column_names else parts - 1 - n
        pq.write_table(table.slice(lo, hi - lo), folder / f"{name:05d}.parquet")


def storage_layout(root: Path, vectors: np.ndarray, key: str = "Flat", params: str = "") -> Path:
    """``<root>/<ds>/index/faiss`` + ``index_infos.json`` + ``id_mapping/``; returns ``<ds>``."""
    ds = root / "tiny"
    write_index(ds / "index" / "faiss", vectors, key)
    infos = {"index_key": key, "index_param": params} if params else {"index_key": key}
    (ds / "index" / "index_infos.json").write_text(json.dumps(infos))
    table = pa.table(rows(len(vectors)), schema=ID_MAPPING_SCHEMA)
    write_mapping(ds / "id_mapping", table)
    return ds
