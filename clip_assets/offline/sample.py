"""A small web of images with DataComp-style rows pointing at it: the demo's and tests' data.

``sample_site`` lays out routes for an :class:`~clip_assets.offline.image_server.ImageServer`
(drawn scenes as real JPEG, PNG and WebP pictures of web-like sizes, each captioned with what it
shows, plus broken answers a crawl meets) and, once the server has a port, the source rows that
point at them, with the crawl-time sha256 of each good image as DataComp records it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow
from clip_assets.offline.image_server import ImageServer, Route, image, slow, status
from clip_assets.offline.scenes import (
    BACKGROUNDS,
    COLOURS,
    COUNT_WORDS,
    SHAPES,
    Scene,
    draw_scene,
)

_FORMATS = ("image/jpeg", "image/png", "image/webp")


def site_scenes(count: int) -> list[Scene]:
    """``count`` scenes that go round every colour-shape pair before repeating one (each round
    in the same pair order), with counts and backgrounds shuffled within a pair, so a site of
    any size shows every pair about equally often and no other attribute follows the pair."""
    rng = np.random.default_rng(0)
    by_pair = [
        [Scene(n, colour, shape, background) for n in COUNT_WORDS for background in BACKGROUNDS]
        for colour, shape in itertools.product(COLOURS, SHAPES)
    ]
    for scenes in by_pair:
        rng.shuffle(scenes)
    rounds = itertools.cycle(itertools.chain.from_iterable(zip(*by_pair, strict=True)))
    return list(itertools.islice(rounds, count))


@dataclass
class SampleSite:
    """Routes to serve and, per path, the row text and the sha256 the crawl recorded, and the
    scene drawn there (what a search result pointing at that path must show)."""

    routes: dict[str, Route] = field(default_factory=dict)
    rows_by_path: dict[str, SampleRow] = field(default_factory=dict)
    scenes: dict[str, Scene] = field(default_factory=dict)

    def rows(self, server: ImageServer) -> list[SampleRow]:
        """The source rows, with URLs on ``server``, in path order."""
        return [
            SampleRow(
                url=server.url(path),
                text=row.text,
                sha256=row.sha256,
                width=row.width,
                height=row.height,
            )
            for path, row in sorted(self.rows_by_path.items())
        ]


def sample_site(
    good: int | None = None,
    *,
    scenes: Sequence[Scene] | None = None,
    seed: int = 0,
    broken: bool = True,
    slow_s: float = 0.0,
) -> SampleSite:
    """Servable pictures of ``scenes`` (or of ``site_scenes(good)``), captioned with what they
    show, as JPEG, PNG and WebP in turn, 100-1600 px wide; and, when ``broken``, one each of:
    404, 500, an HTML page, a truncated JPEG, a JPEG whose bytes differ from the recorded
    sha256, and (when ``slow_s`` > 0) a server that answers late. ``seed`` places the shapes."""
    if (good is None) == (scenes is None):
        raise ValueError("give either good (a number of pictures) or scenes")
    site = SampleSite()
    for i, scene in enumerate(scenes if scenes is not None else site_scenes(good or 0)):
        n = seed + i
        width = 100 + (n * 137) % 1500
        height = 100 + (n * 89) % 1100
        kind = _FORMATS[i % 3]
        data = images.encode(draw_scene(scene, width, height, seed=n), kind)
        path = f"/img/{i:05d}.{kind.split('/')[1]}"
        site.routes[path] = image(data, kind)
        site.scenes[path] = scene
        site.rows_by_path[path] = SampleRow(
            url=None,
            text=scene.caption,
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
        )
    if broken:
        jpeg = images.jpeg(640, 480, seed=seed + 10_000)
        site.routes["/broken/missing.jpg"] = status(404)
        site.routes["/broken/error.jpg"] = status(500)
        site.routes["/broken/page.jpg"] = image(b"<html><body>hello</body></html>", "text/html")
        site.routes["/broken/truncated.jpg"] = image(images.truncated(jpeg), "image/jpeg")
        site.routes["/broken/changed.jpg"] = image(jpeg, "image/jpeg")
        for path in (
            "/broken/missing.jpg",
            "/broken/error.jpg",
            "/broken/page.jpg",
            "/broken/truncated.jpg",
        ):
            site.rows_by_path[path] = SampleRow(url=None, text=f"broken {path}")
        site.rows_by_path["/broken/changed.jpg"] = SampleRow(
            url=None, text="an image that changed since the crawl", sha256="0" * 64
        )
        if slow_s > 0:
            site.routes["/broken/slow.jpg"] = slow(image(jpeg), slow_s)
            site.rows_by_path["/broken/slow.jpg"] = SampleRow(url=None, text="a slow server")
    return site
