"""A real gallery to serve: JPEGs on a loopback image server, embedded by the tiny CLIP model
into a faiss index in our storage layout, and the service running on a real socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gallery_pictures import N_IMAGES, RECALL, picture
from stand_ins.clip_client import serve_on_loopback
from starlette.applications import Starlette

from clip_assets.embed.encoder import ClipEncoder
from clip_assets.embed.model_loading import ModelSpec
from clip_assets.offline.image_server import ImageServer, huge, image
from clip_assets.offline.weights import install_tiny_model
from clip_assets.schemas import ID_MAPPING_SCHEMA
from clip_assets.search import ClipSearcher
from clip_assets.serve import create_app


@pytest.fixture(scope="session")
def gallery_image() -> Callable[[int], bytes]:
    """The bytes of gallery image ``i`` (faiss id ``i``)."""
    return picture


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The open_clip model name of a tiny seeded model folder."""
    return install_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def encoder(tiny_model: str) -> ClipEncoder:
    """The tiny model, loaded once for the session."""
    return ClipEncoder.load(ModelSpec(tiny_model, None, device="cpu", num_workers=0))


@pytest.fixture(scope="session")
def gallery_server() -> Iterator[ImageServer]:
    """Gallery JPEGs at ``/<i>.jpg`` and a 30 MB body at ``/huge.jpg`` on 127.0.0.1."""
    routes = {f"/{i}.jpg": image(picture(i)) for i in range(N_IMAGES)}
    routes["/huge.jpg"] = huge(30 * 1024 * 1024)
    with ImageServer(routes) as server:
        yield server


@pytest.fixture(scope="session")
def gallery(
    tmp_path_factory: pytest.TempPathFactory,
    gallery_server: ImageServer,
    encoder: ClipEncoder,
    tiny_model: str,
) -> Path:
    """``<root>/gallery`` in our storage layout, with ``model.json`` naming the tiny model and
    ``index_infos.json`` its key and recall."""
    ds = tmp_path_factory.mktemp("storage") / "gallery"
    (ds / "index").mkdir(parents=True)
    vectors = encoder.encode_images([picture(i) for i in range(N_IMAGES)])
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(ds / "index" / "faiss"))
    infos = {"index_key": "Flat", "recall_k": 10, "recall": RECALL}
    (ds / "index" / "index_infos.json").write_text(json.dumps(infos))
    model = {"model_name": tiny_model, "pretrained": None, "dim": int(vectors.shape[1])}
    (ds / "index" / "model.json").write_text(json.dumps(model))
    mapping = {
        "i": list(range(N_IMAGES)),
        "uid": [f"{i:032x}" for i in range(N_IMAGES)],
        "url": [gallery_server.url(f"/{i}.jpg") for i in range(N_IMAGES)],
        "text": [f"picture number {i}" for i in range(N_IMAGES)],
    }
    (ds / "id_mapping").mkdir()
    pq.write_table(pa.table(mapping, schema=ID_MAPPING_SCHEMA), ds / "id_mapping" / "0.parquet")
    np.save(ds / "vectors.npy", vectors)
    return ds


@pytest.fixture(scope="session")
def vectors(gallery: Path) -> np.ndarray:
    """The gallery's image embeddings, row i = faiss id i."""
    return np.load(gallery / "vectors.npy")


@pytest.fixture(scope="session")
def searchers(gallery: Path, encoder: ClipEncoder) -> dict[str, ClipSearcher]:
    """Two names over the gallery (several indices at once), sharing the loaded encoder."""
    return {
        "gallery": ClipSearcher.open(gallery, encoder=encoder),
        "gallery_copy": ClipSearcher.open(gallery, encoder=encoder),
    }


@pytest.fixture(scope="session")
def app(searchers: dict[str, ClipSearcher]) -> Starlette:
    """The service over both indices, with loopback image URLs allowed."""
    return create_app(searchers, allow_private_urls=True)


@pytest.fixture(scope="session")
def live_url(app: Starlette) -> Iterator[str]:
    """The app served by uvicorn on a free 127.0.0.1 port; yields its base URL."""
    with serve_on_loopback(app) as url:
        yield url
