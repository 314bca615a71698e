"""Fetching query images by URL from a real loopback server: redirects, caps, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from clip_assets.offline.image_server import ImageServer, drip, huge, image, redirect, status
from clip_assets.offline.images import jpeg
from clip_assets.search.query_image import FetchError, fetch_image

PICTURE = jpeg(64, 48, seed=3)


@pytest.fixture(scope="module")
def server() -> Iterator[ImageServer]:
    routes = {
        "/a.jpg": image(PICTURE),
        "/b.jpg": image(PICTURE),
        "/moved": redirect("/a.jpg"),
        "/loop": redirect("/loop"),
        "/big.jpg": huge(3 * 1024 * 1024),
        "/big-unannounced.jpg": huge(3 * 1024 * 1024, announce=False),
        "/gone.jpg": status(404),
        "/drip.jpg": drip(image(PICTURE), interval_s=0.05, chunk=8),
        "/drip-redirect": redirect("/drip.jpg"),
    }
    with ImageServer(routes) as srv:
        yield srv


def test_fetch_follows_redirects(server: ImageServer) -> None:
    assert fetch_image(server.url("/moved"), allow_private=True) == PICTURE


def test_loopback_is_refused_unless_allowed(server: ImageServer) -> None:
    with pytest.raises(FetchError, match="private_address"):
        fetch_image(server.url("/b.jpg"))
    assert server.hits["/b.jpg"] == 0  # refused before connecting


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big.jpg", "over the 1048576-byte limit"),
        ("/big-unannounced.jpg", "over the 1048576-byte limit"),
        ("/gone.jpg", "HTTP 404"),
        ("/loop", "more than 5 redirects"),
    ],
)
def test_fetch_failures_say_why(server: ImageServer, path: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        fetch_image(server.url(path), allow_private=True, max_bytes=1024 * 1024)


@pytest.mark.parametrize("path", ["/drip.jpg", "/drip-redirect"])
def test_a_dripping_server_is_cut_off_at_the_deadline(server: ImageServer, path: str) -> None:
    """8 bytes every 50 ms never trips the 5 s read timeout; only the total deadline ends it."""
    with pytest.raises(FetchError, match=r"took longer than 0\.5 s"):
        fetch_image(server.url(path), allow_private=True, timeout_s=5.0, deadline_s=0.5)
    assert 0 < server.bytes_sent["/drip.jpg"] < len(PICTURE)


def test_bad_schemes_are_refused() -> None:
    with pytest.raises(FetchError, match="refused"):
        fetch_image("file:///etc/passwd", allow_private=True)


def test_sync_fetch_works_inside_a_running_event_loop(server: ImageServer) -> None:
    async def notebook_cell() -> bytes:
        return fetch_image(server.url("/a.jpg"), allow_private=True)

    assert asyncio.run(notebook_cell()) == PICTURE
