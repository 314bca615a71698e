"""Real faiss indexes on disk, in every folder layout the searcher opens."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


@pytest.fixture(scope="session")
def vectors() -> np.ndarray:
    """The indexed unit vectors."""
    return unit_vectors(N)


@pytest.fixture(scope="session")
def storage_dir(tmp_path_factory: pytest.TempPathFactory, vectors: np.ndarray) -> Path:
    """Our storage layout with an IVF index whose tuned nprobe sits in index_infos.json."""
    root = tmp_path_factory.mktemp("storage")
    return storage_layout(root, vectors, key="IVF4,Flat", params="nprobe=4")


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory: pytest.TempPathFactory, vectors: np.ndarray) -> Path:
    """Our release layout: ``faiss``, ``index_infos.json``, ``model.json``, ``id_mapping/``."""
    folder = tmp_path_factory.mktemp("release")
    write_index(folder / "faiss", vectors, "HNSW16")
    (folder / "index_infos.json").write_text(json.dumps({"index_param": "efSearch=64"}))
    (folder / "model.json").write_text(
        json.dumps({"model_name": "tiny", "pretrained": "/weights.pt", "dim": DIM})
    )
    cols = rows(len(vectors))
    table = pa.table({k: cols[k] for k in ("url", "i", "uid", "text")})
    write_mapping(folder / "id_mapping", table)
    return folder


@pytest.fixture(scope="session")
def fondant_dir(tmp_path_factory: pytest.TempPathFactory, vectors: np.ndarray) -> Path:
    """Fondant's layout: un-normalised vectors, a mapping with only ``url`` and ``i``."""
    folder = tmp_path_factory.mktemp("fondant")
    scale = np.random.default_rng(1).uniform(0.9, 1.1, size=(len(vectors), 1))
    write_index(folder / "faiss", (vectors * scale).astype(np.float32))
    cols = rows(len(vectors))
    write_mapping(folder / "id_mapping", pa.table({"url": cols["url"], "i": cols["i"]}))
    return folder


@pytest.fixture(scope="session")
def clip_back_dir(tmp_path_factory: pytest.TempPathFactory, vectors: np.ndarray) -> Path:
    """clip-retrieval's ``clip back`` folder: ``image.index`` + ``metadata/`` in id order."""
    folder = tmp_path_factory.mktemp("clip_back")
    write_index(folder / "image.index", vectors)
    cols = rows(len(vectors))
    table = pa.table({"url": cols["url"], "caption": cols["text"]})
    write_mapping(folder / "metadata", table, parts=3)
    return folder
