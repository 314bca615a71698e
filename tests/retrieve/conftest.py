"""Real indexes and query sets for the retrieval stage.

Two indexes in our storage layout:

- ``vector_index``: random 64-d unit vectors (any two far apart, cosine ~0 +- 0.15) plus
  planted duplicates: ids 200-204 are near-identical copies (cosine ~0.99) of ids 0-4 under
  their own urls, ids 205-209 repeat the urls of ids 5-9 with fresh vectors;
- ``picture_index``: the tiny CLIP model's embeddings of pictures served on 127.0.0.1 and of
  captions, with ``model.json`` naming that model, for text, image and download queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from retrieve_samples import (
    CAPTIONS,
    DIM,
    N_PICTURES,
    N_RANDOM,
    NEAR_COPIES,
    URL_REPEATS,
    mapping_rows,
    picture,
    unit,
    write_storage,
)

from clip_assets.embed.encoder import ClipEncoder
from clip_assets.embed.model_loading import ModelSpec
from clip_assets.offline.image_server import ImageServer, image, status
from clip_assets.search import ClipSearcher


@pytest.fixture(scope="session")
def indexed_vectors() -> np.ndarray:
    """Row i is the vector of faiss id i in ``vector_index``."""
    rng = np.random.default_rng(0)
    base = unit(rng.standard_normal((N_RANDOM, DIM)))
    copies = unit(base[list(NEAR_COPIES)] + 0.02 * rng.standard_normal((len(NEAR_COPIES), DIM)))
    repeats = unit(rng.standard_normal((len(URL_REPEATS), DIM)))
    return np.concatenate([base, copies, repeats])


def write_vector_index(ds: Path, vectors: np.ndarray, key: str = "Flat") -> Path:
    urls = [f"https://img.example/{i}.jpg" for i in range(len(vectors))]
    for n, i in enumerate(URL_REPEATS):
        urls[N_RANDOM + len(NEAR_COPIES) + n] = urls[i]
    captions = [f"caption {i}" for i in range(len(vectors))]
    write_storage(ds, vectors, mapping_rows(urls, captions), None, key)
    return ds


@pytest.fixture(scope="session")
def vector_index(tmp_path_factory: pytest.TempPathFactory, indexed_vectors: np.ndarray) -> Path:
    return write_vector_index(tmp_path_factory.mktemp("storage") / "vectors", indexed_vectors)


@pytest.fixture(scope="session")
def fast_scan_searcher(
    tmp_path_factory: pytest.TempPathFactory, indexed_vectors: np.ndarray
) -> ClipSearcher:
    """The same vectors as ``vector_index`` in IVF 4-bit fast-scan PQ codes, which faiss cannot
    turn back into vectors."""
    ds = tmp_path_factory.mktemp("storage") / "fast_scan"
    return ClipSearcher.open(write_vector_index(ds, indexed_vectors, "IVF2,PQ32x4fs"))


@pytest.fixture(scope="session")
def vector_searcher(vector_index: Path) -> ClipSearcher:
    return ClipSearcher.open(vector_index)


@pytest.fixture(scope="session")
def picture_server() -> Iterator[ImageServer]:
    """Pictures at ``/p/<i>.jpg``, caption stand-ins at ``/c/<i>.jpg``, one 404, one page."""
    routes = {f"/p/{i}.jpg": image(picture(i)) for i in range(N_PICTURES)}
    routes.update({f"/c/{i}.jpg": image(picture(50 + i)) for i in range(len(CAPTIONS))})
    routes["/gone.jpg"] = status(404)
    routes["/page.jpg"] = image(b"<html>not a picture</html>", "text/html")
    with ImageServer(routes) as server:
        yield server


@pytest.fixture(scope="session")
def encoder(tiny_model_name: str) -> ClipEncoder:
    return ClipEncoder.load(ModelSpec(tiny_model_name, None, device="cpu", num_workers=0))


@pytest.fixture(scope="session")
def picture_index(
    tmp_path_factory: pytest.TempPathFactory,
    picture_server: ImageServer,
    encoder: ClipEncoder,
    tiny_model_name: str,
) -> Path:
    """Ids 0-7: the pictures; 8-11: the captions' text embeddings; 12, 13: a dead url and a
    page that is no image (both with a picture's vector, so downloads meet them)."""
    ds = tmp_path_factory.mktemp("storage") / "pictures"
    pictures = encoder.encode_images([picture(i) for i in range(N_PICTURES)])
    texts = encoder.encode_texts(CAPTIONS)
    vectors = np.concatenate([pictures, texts, pictures[:2]])
    urls = [picture_server.url(f"/p/{i}.jpg") for i in range(N_PICTURES)]
    urls += [picture_server.url(f"/c/{i}.jpg") for i in range(len(CAPTIONS))]
    urls += [picture_server.url("/gone.jpg"), picture_server.url("/page.jpg")]
    captions = [f"picture {i}" for i in range(N_PICTURES)] + CAPTIONS + ["gone", "page"]
    model = {"model_name": tiny_model_name, "pretrained": None, "dim": int(vectors.shape[1])}
    write_storage(ds, vectors, mapping_rows(urls, captions), model)
    return ds


@pytest.fixture(scope="session")
def picture_searcher(picture_index: Path) -> ClipSearcher:
    """Opened as a user would: the model comes from the index's ``model.json``."""
    searcher = ClipSearcher.open(picture_index)
    searcher.model = searcher.model.override(device="cpu")
    return searcher
