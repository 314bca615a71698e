"""The offline image server and image maker themselves (the demo relies on them too)."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from clip_assets.offline import images
from clip_assets.offline.image_server import (
    ImageServer,
    drip,
    flaky,
    huge,
    image,
    redirect,
    status,
)


def test_routes_answer_as_scripted() -> None:
    routes = {
        "/a.jpg": image(b"jpeg-bytes", X_Robots_Tag="noai"),
        "/busy": flaky(image(b"ok"), times=1, code=429, retry_after="7"),
        "/moved": redirect("/a.jpg", 301),
        "/teapot": status(418),
    }
    with ImageServer(routes) as srv, httpx.Client() as client:
        a = client.get(srv.url("/a.jpg?x=1"))
        busy = [client.get(srv.url("/busy")) for _ in range(2)]
        moved = client.get(srv.url("/moved"))
        missing = client.get(srv.url("/nothing"))
        teapot = client.head(srv.url("/teapot"))
        assert srv.hits["/a.jpg"] == 1 and srv.hits["/busy"] == 2
        assert srv.bytes_sent["/a.jpg"] == len(b"jpeg-bytes")
        assert srv.connections == 1  # one keep-alive connection served everything
    assert (a.content, a.headers["x-robots-tag"], a.headers["content-type"]) == (
        b"jpeg-bytes",
        "noai",
        "image/jpeg",
    )
    assert [r.status_code for r in busy] == [429, 200] and busy[0].headers["retry-after"] == "7"
    assert (moved.status_code, moved.headers["location"]) == (301, "/a.jpg")
    assert (missing.status_code, teapot.status_code) == (404, 418)


def test_drip_sends_slowly_and_latency_delays_every_request() -> None:
    with ImageServer({"/d": drip(image(b"x" * 40), 0.05, chunk=10)}, latency_s=0.1) as srv:
        start = time.monotonic()
        body = httpx.get(srv.url("/d")).content
        elapsed = time.monotonic() - start
    assert body == b"x" * 40 and elapsed >= 0.25  # 0.1 s latency, then 3 gaps of 0.05 s


def test_huge_body_without_length_ends_with_the_connection() -> None:
    with ImageServer({"/h": huge(300_000, announce=False)}) as srv:
        response = httpx.get(srv.url("/h"))
    assert len(response.content) == 300_000 and "content-length" not in response.headers


@pytest.mark.parametrize(
    ("make", "fmt", "mode"),
    [
        (lambda: images.jpeg(64, 48, 1), "JPEG", "RGB"),
        (lambda: images.jpeg(64, 48, 1, mode="CMYK", progressive=True), "JPEG", "CMYK"),
        (lambda: images.png(64, 48, 1, mode="I;16"), "PNG", "I;16"),
        (lambda: images.png(64, 48, 1, mode="P"), "PNG", "P"),
        (lambda: images.webp(64, 48, 1), "WEBP", "RGB"),
        (lambda: images.gif(64, 48, 1), "GIF", "P"),
    ],
)
def test_image_maker_formats(make, fmt: str, mode: str) -> None:
    img = Image.open(io.BytesIO(make()))
    assert (img.format, img.mode, img.size) == (fmt, mode, (64, 48))


def test_seeds_give_different_pictures_and_the_same_seed_the_same() -> None:
    a, b, again = (np.asarray(images.picture(64, 64, s), dtype=int) for s in (1, 2, 1))
    assert np.abs(a - b).mean() > 10 and np.array_equal(a, again)


def test_png_bomb_declares_its_size_in_few_bytes() -> None:
    bomb = images.png_bomb(30_000, 30_000)
    assert len(bomb) < 2_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
