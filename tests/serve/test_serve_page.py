"""The search page in headless Chromium: a real page load runs a query, shows an even grid of
portrait and landscape images, and says which query and which index produced it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from headless_chromium import FLAGS, Chromium

from clip_assets.offline.image_server import ImageServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    """Run headless Chromium on ``url`` with a fresh profile; returns its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        str(CHROMIUM),
        *FLAGS,
        f"--user-data-dir={profile}",
        # Virtual time runs until the page is idle: the query and thumbnails have loaded.
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_page_runs_a_query_and_says_what_produced_the_grid(live_url: str, tmp_path: Path) -> None:
    page = f"{live_url}/?q=colourful+shapes&index=gallery_copy&k=8&dedup=0"
    dom = chromium(tmp_path, page, "--dump-dom")
    assert 'data-state="done"' in dom, dom[-3000:]
    cards = re.findall(r'<figure class="result[^"]*" data-id="(\d+)">', dom)
    assert len(cards) == 8
    assert len(set(cards)) == 8
    assert dom.count('class="similarity"') == 8
    assert "picture number" in dom
    status = re.search(r'<div id="status"[^>]*>([^<]*)</div>', dom).group(1)
    assert status.startswith(
        "8 results for the text “colourful shapes” from gallery_copy (24 images, Flat, "
        "model local-dir:"
    ), status
    assert "recall@10 0.975 image / 0.925 text)" in status
    # Every thumbnail loaded from the image server.
    assert dom.count('<figure class="result loaded"') == 8, dom[-3000:]

    screenshot = tmp_path / "search-page.png"
    chromium(tmp_path, page, f"--screenshot={screenshot}", "--window-size=1200,900")
    assert screenshot.stat().st_size > 10_000
    print(f"search page screenshot: {screenshot}")


def test_portrait_and_landscape_images_fill_an_even_grid(live_url: str, tmp_path: Path) -> None:
    """Laid out by a live browser: every cell the same square, every card in a row the same
    height, rows aligned, and each picture shown whole inside its cell (never cropped)."""
    assert CHROMIUM is not None
    with Chromium(CHROMIUM, tmp_path / "profile") as browser:
        browser.open(f"{live_url}/?q=shapes&index=gallery&k=12&dedup=0")
        browser.wait_for(
            "document.body?.dataset.state === 'done' && "
            "[...document.images].filter(i => i.closest('.result')).every(i => i.complete) && "
            "document.querySelectorAll('.result.loaded').length === 12"
        )
        cells = browser.evaluate(LAYOUT)
    assert len(cells) == 12
    orientations = {c["natural"][0] > c["natural"][1] for c in cells}
    assert orientations == {True, False}  # both landscape and portrait pictures are shown
    sizes = {(round(c["thumb"]["width"]), round(c["thumb"]["height"])) for c in cells}
    assert len(sizes) == 1
    ((width, height),) = sizes
    assert width == height  # square cells
    rows: dict[int, list[dict]] = {}
    for cell in cells:
        rows.setdefault(round(cell["card"]["top"]), []).append(cell)
    assert len(rows) >= 2
    assert len({round(c["card"]["height"]) for c in cells}) == 1  # no ragged rows
    columns = [sorted(round(c["card"]["left"]) for c in row) for row in rows.values()]
    assert all(column == columns[0][: len(column)] for column in columns)
    for cell in cells:
        shown_w, shown_h = cell["shown"]
        assert shown_w <= width + 0.5 and shown_h <= height + 0.5  # the whole picture fits
        assert max(shown_w, shown_h) >= min(width, height) - 1  # and fills its long side


#: Per result card: its box, its thumbnail cell, the picture's natural size and the size the
#: picture is drawn at inside the cell (object-fit decides that).
LAYOUT = """
[...document.querySelectorAll('.result')].map((card) => {
  const img = card.querySelector('img');
  const box = (el) => { const r = el.getBoundingClientRect();
                        return {left: r.left, top: r.top, width: r.width, height: r.height}; };
  const thumb = box(card.querySelector('a.thumb'));
  const fit = getComputedStyle(img).objectFit;
  const scale = fit === 'contain'
    ? Math.min(thumb.width / img.naturalWidth, thumb.height / img.naturalHeight)
    : Math.max(thumb.width / img.naturalWidth, thumb.height / img.naturalHeight);
  return {card: box(card), thumb, natural: [img.naturalWidth, img.naturalHeight],
          shown: [img.naturalWidth * scale, img.naturalHeight * scale]};
})
"""


def test_page_queries_by_image_url(
    live_url: str, gallery_server: ImageServer, tmp_path: Path
) -> None:
    query = quote(gallery_server.url("/5.jpg"), safe="")
    dom = chromium(tmp_path, f"{live_url}/?image_url={query}&index=gallery&k=4", "--dump-dom")
    cards = re.findall(r'<figure class="result[^"]*" data-id="(\d+)">', dom)
    assert cards[0] == "5"
    # Deduplication is on by default: the tiny model puts the gallery close together.
    assert 1 <= len(cards) <= 4
    status = re.search(r'<div id="status"[^>]*>([^<]*)</div>', dom).group(1)
    assert status.startswith(f"{len(cards)} results for the image at {unquote(query)} from ")
    assert status.endswith("near-duplicates hidden")


def test_page_shows_the_service_error(live_url: str, tmp_path: Path) -> None:
    dom = chromium(tmp_path, f"{live_url}/?q=cats&index=no_such_index", "--dump-dom")
    assert 'data-state="error"' in dom
    assert "unknown indice_name" in dom
