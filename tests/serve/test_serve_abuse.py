"""Hostile requests: numbers out of range, wrong shapes, deep nesting, image bombs, a body that
drips in. Each gets a 4xx that says what was wrong, never a 500."""

from __future__ import annotations

import base64
import json
import socket
import time

import numpy as np
import pytest
from stand_ins.clip_client import serve_on_loopback
from starlette.testclient import TestClient

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.offline.image_server import ImageServer, image
from clip_assets.offline.images import jpeg, png_bomb
from clip_assets.search import ClipSearcher
from clip_assets.serve import Limits, create_app

DIGITS_5000 = "7" * 5000


@pytest.fixture(scope="module")
def client(searchers: dict[str, ClipSearcher]) -> TestClient:
    """The service with its default limits over one index; loopback image URLs allowed."""
    app = create_app({"gallery": searchers["gallery"]}, allow_private_urls=True)
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("/knn-service", b'{"embedding_input": [1e400, 0.5]}', "number 1e400 is out of range"),
        ("/knn-service", b'{"embedding_input": [-1e400]}', "out of range"),
        ("/knn-service", f'{{"text": "a", "num_images": {DIGITS_5000}}}', "5000 characters"),
        ("/knn-service", f'{{"embedding_input": [{DIGITS_5000}]}}', "out of range"),
        ("/knn-service", b'{"text": "a", "num_images": 1e400}', "out of range"),
        ("/knn-service", b'{"embedding_input": [NaN, 1]}', "NaN is not a number"),
        ("/knn-service", b'{"embedding_input": [Infinity]}', "Infinity is not a number"),
        ("/knn-service", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("/knn-service", b'{"text": "a", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested"),
        ("/knn-service", b'{"embedding_input": [[0.5, 0.5]]}', "flat list of numbers"),
        ("/knn-service", b'{"embedding_input": {"0": 1.0}}', "must be a list"),
        ("/knn-service", b'{"text": ["a"]}', "text must be a string"),
        ("/knn-service", b'{"text": "a", "indice_name": 7}', "indice_name must be a string"),
        ("/knn-service", b'{"text": "a", "deduplicate": "yes"}', "deduplicate must be a boolean"),
        ("/knn-service", b'{"text": "a", "num_images": true}', "num_images must be an integer"),
        ("/knn-service", b'{"text": "a", "aesthetic_score": "high"}', "aesthetic_score must be"),
        ("/knn-service", b'{"text": "a", "use_safety_model": 1}', "must be a boolean"),
        ("/knn-service", b'{"text": "a", "use_mclip": true}', "use_mclip is not supported"),
        ("/metadata", f'{{"ids": [{DIGITS_5000}]}}', "out of range"),
        ("/metadata", b'{"ids": [9223372036854775808]}', "64-bit"),
        ("/metadata", b'{"ids": [[1, 2]]}', "list of integers"),
        ("/metadata", b'{"ids": {"1": 2}}', "list of integers"),
        ("/metadata", b'{"ids": [1.5]}', "list of integers"),
        ("/metadata", b"[" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_numbers_and_shapes_get_400(
    client: TestClient, route: str, body: bytes | str, message: str
) -> None:
    response = client.post(route, content=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_the_limits_are_the_downloaders() -> None:
    settings, limits = DownloadSettings(), Limits()
    assert limits.max_pixels == settings.max_pixels
    assert limits.max_image_bytes == settings.max_body_bytes
    assert limits.fetch_deadline_s == settings.total_timeout_s


def test_a_pixel_bomb_is_refused_from_its_header(client: TestClient) -> None:
    """A 13000x13000 PNG (169 Mpx, ~680 MB decoded) of a few hundred bytes: Pillow only warns
    below twice its own limit; ours refuses before decoding (one row of data follows the
    header, so a decode would fail as truncated instead)."""
    bomb = png_bomb(13_000, 13_000)
    assert len(bomb) < 2_000
    body = {"image": base64.b64encode(bomb).decode()}
    response = client.post("/knn-service", content=json.dumps(body))
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert "13000x13000 = 169,000,000 pixels" in error
    assert "89,478,485-pixel limit" in error


def test_a_pixel_bomb_behind_an_image_url_is_refused(client: TestClient) -> None:
    with ImageServer({"/bomb.png": image(png_bomb(15_000, 9_000), "image/png")}) as server:
        body = {"image_url": server.url("/bomb.png")}
        response = client.post("/knn-service", content=json.dumps(body))
    assert response.status_code == 413, response.text
    assert "15000x9000 = 135,000,000 pixels" in response.json()["error"]


def test_pixel_limit_is_configurable(searchers: dict[str, ClipSearcher]) -> None:
    app = create_app({"gallery": searchers["gallery"]}, limits=Limits(max_pixels=100 * 100))
    with TestClient(app) as small:
        body = {"image": base64.b64encode(jpeg(160, 120)).decode()}
        response = small.post("/knn-service", content=json.dumps(body))
        assert response.status_code == 413
        assert "19,200 pixels, over the 10,000-pixel limit" in response.json()["error"]
        body = {"image": base64.b64encode(jpeg(100, 100)).decode()}
        assert small.post("/knn-service", content=json.dumps(body)).status_code == 200


def test_a_truncated_upload_is_a_400(client: TestClient) -> None:
    data = jpeg(160, 120)[:600]
    body = {"image": base64.b64encode(data).decode()}
    response = client.post("/knn-service", content=json.dumps(body))
    assert response.status_code == 400
    assert "could not be decoded" in response.json()["error"]


def test_a_body_that_drips_in_is_cut_off(searchers: dict[str, ClipSearcher]) -> None:
    """A client that sends one byte per 50 ms never goes quiet; the body deadline ends it."""
    app = create_app({"gallery": searchers["gallery"]}, limits=Limits(body_timeout_s=0.5))
    with serve_on_loopback(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as sock:
            head = "POST /knn-service HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
            sock.sendall(head.encode())
            answer, give_up = b"", time.monotonic() + 30
            while b"did not arrive" not in answer and time.monotonic() < give_up:
                try:
                    answer += sock.recv(65536)
                except TimeoutError:
                    sock.sendall(b" ")
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"the request body did not arrive within 0.5 s" in answer


def test_numbers_written_any_valid_way_still_work(client: TestClient, vectors: np.ndarray):
    values = ", ".join(f"{v:.7e}" for v in vectors[4])
    body = f'{{"embedding_input": [{values}], "num_images": 2, "num_result_ids": 3}}'
    response = client.post("/knn-service", content=body)
    assert response.status_code == 200, response.text
    assert response.json()[0]["id"] == 4
