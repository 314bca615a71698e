"""The clip-retrieval back-end API: ClipClient's exact requests over a real socket, the other
routes and every refusal through Starlette's test client."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import requests
from stand_ins.clip_client import clip_client_body, post_like_clip_client
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clip_assets.offline.image_server import ImageServer
from clip_assets.search import ClipSearcher
from clip_assets.serve import Limits, create_app


def test_clip_client_embedding_query(live_url: str, vectors: np.ndarray) -> None:
    body = clip_client_body("gallery", deduplicate=False, embedding_input=vectors[5].tolist())
    response = post_like_clip_client(f"{live_url}/knn-service", body)
    assert response.status_code == 200, response.text
    results = response.json()
    assert len(results) == len(vectors)  # 40 asked, 24 indexed
    assert list(results[0]) == ["id", "similarity", "url", "caption"]
    assert results[0]["id"] == 5
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert results[0]["url"].endswith("/5.jpg")
    assert results[0]["caption"] == "picture number 5"
    similarities = [r["similarity"] for r in results]
    assert similarities == sorted(similarities, reverse=True)


def test_clip_client_defaults_deduplicate_and_name_what_is_unsupported(
    live_url: str, vectors: np.ndarray
) -> None:
    """ClipClient's defaults: deduplicate, safety and violence filters, aesthetic 9 / 0.5.
    The tiny random model embeds the gallery close together (cosines mostly above 0.94), so
    clip back's rule keeps few of them; the filters it cannot apply come back as warnings
    beside a body ClipClient parses as usual."""
    body = clip_client_body("gallery", embedding_input=vectors[5].tolist())
    response = post_like_clip_client(f"{live_url}/knn-service", body)
    assert response.status_code == 200, response.text
    results = response.json()
    assert isinstance(results, list)
    assert results[0]["id"] == 5
    kept = [r["id"] for r in results]
    cosines = vectors @ vectors.T
    assert (cosines[np.ix_(kept, kept)][~np.eye(len(kept), dtype=bool)] < 0.94).all()
    for dropped in set(range(len(vectors))) - set(kept):
        others = np.delete(cosines[dropped], dropped)
        assert others.max() >= 0.94  # removed only as someone's near-duplicate
    warning = response.headers["Warning"]
    for option in ("use_safety_model", "use_violence_detector", "aesthetic_score"):
        assert option in warning
    assert warning.startswith('299 clip-assets "')


def test_clip_client_image_and_text_queries(
    live_url: str, gallery_image: Callable[[int], bytes]
) -> None:
    # ClipClient reads the file and sends its base64 text.
    encoded = base64.b64encode(gallery_image(11)).decode("utf-8")
    body = clip_client_body("gallery_copy", image=encoded)
    results = post_like_clip_client(f"{live_url}/knn-service", body).json()
    assert results[0]["id"] == 11

    body = clip_client_body("gallery", deduplicate=False, text="a photo of a cat", verbose=False)
    response = post_like_clip_client(f"{live_url}/knn-service", body)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 24


def test_clip_front_requests(live_url: str) -> None:
    """clip-retrieval's front end: indices list, then a text/plain knn call and metadata."""
    assert requests.get(f"{live_url}/indices-list", timeout=10).json() == [
        "gallery",
        "gallery_copy",
    ]
    body = json.dumps(
        {
            "text": "shapes",
            "image": None,
            "image_url": None,
            "modality": "image",
            "num_images": 3,
            "indice_name": "gallery",
            "num_result_ids": 10,
            "use_mclip": False,
            "deduplicate": False,
            "use_safety_model": False,
        }
    )
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://front.example"}
    response = requests.post(f"{live_url}/knn-service", data=body, headers=headers, timeout=30)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Warning" in response.headers["access-control-expose-headers"]
    assert "Warning" not in response.headers  # nothing asked that is not supported
    results = response.json()
    # Like clip back: num_result_ids neighbours, metadata on the first num_images only.
    assert len(results) == 10
    assert all("url" in r for r in results[:3])
    assert all(set(r) == {"id", "similarity"} for r in results[3:])

    ids = [r["id"] for r in results[3:6]]
    body = json.dumps({"ids": ids, "indice_name": "gallery"})
    metadata = requests.post(f"{live_url}/metadata", data=body, timeout=10).json()
    assert [m["id"] for m in metadata] == ids
    assert metadata[0]["metadata"] == {
        "url": results[3]["url"] if "url" in results[3] else metadata[0]["metadata"]["url"],
        "caption": f"picture number {ids[0]}",
        "uid": f"{ids[0]:032x}",
    }
    assert metadata[0]["metadata"]["url"].endswith(f"/{ids[0]}.jpg")


def test_image_url_query(app: Starlette, gallery_server: ImageServer) -> None:
    with TestClient(app) as client:
        response = client.post(
            "/knn-service", content=json.dumps({"image_url": gallery_server.url("/17.jpg")})
        )
    assert response.status_code == 400  # two indices: the name is required
    with TestClient(app) as client:
        body = {"image_url": gallery_server.url("/17.jpg"), "indice_name": "gallery"}
        response = client.post("/knn-service", content=json.dumps(body))
    assert response.status_code == 200, response.text
    assert response.json()[0]["id"] == 17


@pytest.fixture(scope="module")
def strict_client(searchers: dict[str, ClipSearcher]) -> TestClient:
    """The default service: private image URLs refused, a 64 KiB image limit, k up to 50."""
    only = {"gallery": searchers["gallery"]}
    with TestClient(create_app(only, limits=Limits(max_k=50, max_image_bytes=64 * 1024))) as c:
        yield c


def test_single_index_needs_no_name(strict_client: TestClient, vectors: np.ndarray) -> None:
    body = {"embedding_input": vectors[2].tolist(), "num_images": 1}
    response = strict_client.post("/knn-service", content=json.dumps(body))
    assert [r["id"] for r in response.json()] == [2]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"num_images": 3}, 400, "give one of text"),
        ({"text": "", "image": None}, 400, "give one of text"),
        ({"embedding_input": [0.1, 0.2]}, 400, "needs 512"),
        ({"embedding_input": [0.0] * 512}, 400, "all zeros"),
        ({"embedding_input": ["a"] * 512}, 400, "list of numbers"),
        ({"embedding_input": "0.1,0.2"}, 400, "must be a list"),
        ({"text": "cat", "num_images": 0}, 400, "from 1 to 50"),
        ({"text": "cat", "num_images": 51}, 400, "from 1 to 50"),
        ({"text": "cat", "num_images": "9"}, 400, "from 1 to 50"),
        ({"text": "cat", "num_result_ids": 10**9}, 400, "from 1 to 50"),
        ({"text": 5}, 400, "text must be a string"),
        ({"text": "cat", "modality": "text"}, 400, "image embeddings only"),
        ({"text": "cat", "modality": "audio"}, 400, "modality must be"),
        ({"text": "cat", "indice_name": "laion5B"}, 404, "unknown indice_name"),
        ({"image": "%%%not base64%%%"}, 400, "not valid base64"),
        ({"image": base64.b64encode(b"GIF89a garbage").decode()}, 400, "not an image"),
        ({"image": base64.b64encode(bytes(70 * 1024)).decode()}, 413, "limit"),
        ({"image_url": "http://127.0.0.1:9/x.jpg"}, 400, "private_address"),
        ({"image_url": "file:///etc/passwd"}, 400, "refused"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    strict_client: TestClient, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body)
    response = strict_client.post("/knn-service", content=content)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_oversize_body_and_image_url(
    app: Starlette, strict_client: TestClient, gallery_server: ImageServer
) -> None:
    response = strict_client.post("/knn-service", content=b" " * (2 * 1024 * 1024))
    assert response.status_code == 413
    chunked = (b" " * 65536 for _ in range(40))  # no Content-Length: counted as it streams
    response = strict_client.post("/knn-service", content=chunked)
    assert response.status_code == 413
    with TestClient(app) as client:  # private URLs allowed, 10 MiB limit; the body is 30 MB
        body = {"image_url": gallery_server.url("/huge.jpg"), "indice_name": "gallery"}
        response = client.post("/knn-service", content=json.dumps(body))
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_metadata_refusals(strict_client: TestClient) -> None:
    assert strict_client.post("/metadata", content=json.dumps({"ids": []})).json() == []
    response = strict_client.post("/metadata", content=json.dumps({"ids": [1, 999]}))
    assert response.status_code == 404
    assert "999" in response.json()["error"]
    response = strict_client.post("/metadata", content=json.dumps({"ids": ["1"]}))
    assert response.status_code == 400
