"""Real faiss indexes on disk, in every folder layout the searcher opens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from index_folders import DIM, N, rows, storage_layout, unit_vectors, write_index, write_mapping


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
