"""The search page in headless Chromium: a real page load runs a text query and shows the grid."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from clip_assets.offline.image_server import ImageServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    """Run headless Chromium on ``url`` with a fresh profile; returns its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # Virtual time runs until the page is idle: the query and thumbnails have loaded.
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_page_runs_a_query_and_shows_an_image_grid(live_url: str, tmp_path: Path) -> None:
    page = f"{live_url}/?q=colourful+shapes&index=gallery_copy&k=8"
    dom = chromium(tmp_path, page, "--dump-dom")
    assert 'data-state="done"' in dom, dom[-3000:]
    cards = re.findall(r'<figure class="result[^"]*" data-id="(\d+)">', dom)
    assert len(cards) == 8
    assert len(set(cards)) == 8
    assert dom.count('class="similarity"') == 8
    assert "picture number" in dom
    assert "8 results from gallery_copy" in dom
    # Every thumbnail loaded from the image server.
    assert dom.count('<figure class="result loaded"') == 8, dom[-3000:]

    screenshot = tmp_path / "search-page.png"
    chromium(tmp_path, page, f"--screenshot={screenshot}", "--window-size=1200,900")
    assert screenshot.stat().st_size > 10_000
    print(f"search page screenshot: {screenshot}")


def test_page_queries_by_image_url(
    live_url: str, gallery_server: ImageServer, tmp_path: Path
) -> None:
    query = quote(gallery_server.url("/5.jpg"), safe="")
    dom = chromium(tmp_path, f"{live_url}/?image_url={query}&index=gallery&k=4", "--dump-dom")
    cards = re.findall(r'<figure class="result[^"]*" data-id="(\d+)">', dom)
    assert len(cards) == 4
    assert cards[0] == "5"


def test_page_shows_the_service_error(live_url: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, f"{live_url}/?q=cats&index=no_such_index", "--dump-dom")
    assert 'data-state="error"' in dom
    assert "unknown indice_name" in dom
