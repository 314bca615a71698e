"""Sizes, builders and pictures shared by the retrieval tests (fixtures in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.offline.images import jpeg
from clip_assets.schemas import ID_MAPPING_SCHEMA

DIM = 64
N_RANDOM = 200
NEAR_COPIES = range(5)  # ids 200-204 copy the vectors of ids 0-4
URL_REPEATS = range(5, 10)  # ids 205-209 repeat the urls of ids 5-9
N_PICTURES = 8
CAPTIONS = ["a red bicycle", "a bowl of soup", "mountains at dawn", "a sleeping cat"]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def write_storage(
    ds: Path, vectors: np.ndarray, mapping: dict[str, list], model: dict | None, key: str = "Flat"
):
    """``<ds>/index/faiss`` (an inner-product ``key`` index), ``model.json``, ``id_mapping/``."""
    (ds / "index").mkdir(parents=True)
    index = faiss.index_factory(vectors.shape[1], key, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    faiss.write_index(index, str(ds / "index" / "faiss"))
    if model is not None:
        (ds / "index" / "model.json").write_text(json.dumps(model))
    (ds / "id_mapping").mkdir()
    pq.write_table(pa.table(mapping, schema=ID_MAPPING_SCHEMA), ds / "id_mapping" / "0.parquet")


def mapping_rows(urls: list[str], captions: list[str]) -> dict[str, list]:
    n = len(urls)
    return {
        "i": list(range(n)),
        "uid": [f"{i:032x}" for i in range(n)],
        "url": urls,
        "text": captions,
    }


def picture(i: int) -> bytes:
    return jpeg(160 + 8 * i, 120, seed=100 + i)
