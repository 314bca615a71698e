"""A small web of images with DataComp-style rows pointing at it: the demo's and tests' data.

``sample_site`` lays out routes for an :class:`~clip_assets.offline.image_server.ImageServer`
(real JPEG, PNG and WebP pictures of web-like sizes, plus broken answers a crawl meets) and,
once the server has a port, the source rows that point at them, with the crawl-time sha256 of
each good image as DataComp records it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow
from clip_assets.offline.image_server import ImageServer, Route, image, slow, status

_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")
_THINGS = ("circles", "squares", "stripes", "shapes", "gradient", "pattern")


def caption(seed: int) -> str:
    return f"a picture of {_COLOURS[seed % len(_COLOURS)]} {_THINGS[seed // 8 % len(_THINGS)]}"


@dataclass
class SampleSite:
    """Routes to serve and, per path, the row text and the sha256 the crawl recorded."""

    routes: dict[str, Route] = field(default_factory=dict)
    rows_by_path: dict[str, SampleRow] = field(default_factory=dict)

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
    good: int, *, seed: int = 0, broken: bool = True, slow_s: float = 0.0
) -> SampleSite:
    """``good`` servable pictures (JPEG, PNG, WebP in turn, 100-1600 px wide) and, when
    ``broken``, one each of: 404, 500, an HTML page, a truncated JPEG, a JPEG whose bytes
    differ from the recorded sha256, and (when ``slow_s`` > 0) a server that answers late."""
    site = SampleSite()
    encoders = (images.jpeg, images.png, images.webp)
    types = ("image/jpeg", "image/png", "image/webp")
    for i in range(good):
        n = seed + i
        width = 100 + (n * 137) % 1500
        height = 100 + (n * 89) % 1100
        data = encoders[i % 3](width, height, seed=n)
        path = f"/img/{i:05d}.{types[i % 3].split('/')[1]}"
        site.routes[path] = image(data, types[i % 3])
        site.rows_by_path[path] = SampleRow(
            url=None,
            text=caption(n),
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
