"""The rehearsal's inputs: a crawl-like image pool and a DataComp-schema source pointing at it.

The pool mixes what a crawl meets: mostly photo-like JPEGs of web sizes (``_harness.
web_like_jpeg``: 100 to 1600 px wide), some PNG, WebP and GIF, and a tail of multi-MB photos
(2400 to 4000 px). It is generated once and cached. The source is ``rows`` rows in a few
parquet files of unequal length (so slices end mid-file, as DataComp's do), named like
DataComp's files, with ``uid`` = md5(text + url) and the sha256 of the bytes each URL serves.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _harness import CACHE, web_like_jpeg
from _loopback_web import KINDS
from PIL import Image

from clip_assets.offline import images
from clip_assets.offline.datacomp import DATACOMP_SCHEMA

#: Share of the pool per format; "big" are the multi-MB photos.
_POOL_MIX = (("jpg", 0.815), ("png", 0.07), ("webp", 0.08), ("gif", 0.02), ("big", 0.015))


@dataclass(frozen=True)
class PoolItem:
    name: str
    sha256: str
    width: int
    height: int
    size: int


def _big_photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2400, 4000))
    height = int(width / rng.uniform(1.2, 1.6))
    cells = rng.integers(0, 256, (height // 48, width // 48, 3), np.uint8)
    base = Image.fromarray(cells).resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 9, (height, width, 3)).astype(np.int16)
    pixels = np.clip(np.asarray(base, np.int16) + grain, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _item_bytes(kind: str, seed: int) -> bytes:
    rng = random.Random(seed)
    if kind == "jpg":
        return web_like_jpeg(seed)
    if kind == "big":
        return _big_photo(seed)
    width, height = rng.randint(160, 900), rng.randint(120, 700)
    if kind == "png":
        return images.png(width, height, seed=seed)
    if kind == "webp":
        return images.webp(width, height, seed=seed, quality=rng.randint(60, 85))
    return images.gif(min(width, 400), min(height, 300), seed=seed)


def crawl_pool(count: int = 400, seed: int = 0) -> Path:
    """A folder of ``count`` images in the crawl-like mix, generated once under CACHE."""
    folder = CACHE / f"crawl-pool-{seed}-{count}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for kind, share in _POOL_MIX:
        n = max(1, round(count * share))
        for i in range(start, start + n):
            ext = "jpg" if kind == "big" else kind
            (folder / f"{i:05d}.{ext}").write_bytes(_item_bytes(kind, seed * 1_000_003 + i))
        start += n
    (folder / "done").write_text("ok")
    return folder


def pool_items(folder: Path) -> list[PoolItem]:
    items = []
    for path in sorted(p for p in folder.iterdir() if p.suffix):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
        items.append(
            PoolItem(path.name, hashlib.sha256(data).hexdigest(), width, height, len(data))
        )
    return items


def _kinds(rows: int, rng: np.random.Generator) -> np.ndarray:
    names = ["ok", *KINDS]
    shares = np.array([1.0 - sum(KINDS.values()), *KINDS.values()])
    return np.array(names)[rng.choice(len(names), size=rows, p=shares)]


def write_source(
    folder: Path,
    rows: int,
    files: int,
    items: list[PoolItem],
    port: int,
    hosts: list[str],
    uneven: bool = True,
) -> dict[str, int]:
    """Writes ``rows`` rows in ``files`` parquet files, of unequal lengths unless ``uneven`` is
    off (then every file has the same length, so slices end at file ends and the partition
    count is exact); returns how many rows of each kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    kinds = _kinds(rows, rng)
    picks = rng.integers(0, len(items), rows)
    host_of = rng.integers(0, len(hosts), rows)
    weights = rng.uniform(0.7, 1.3, files) if uneven else np.ones(files)
    bounds = np.concatenate([[0], np.cumsum(weights / weights.sum() * rows)]).round().astype(int)
    for f in range(files):
        lo, hi = int(bounds[f]), int(bounds[f + 1])
        urls, texts, shas, widths, heights = [], [], [], [], []
        for n in range(lo, hi):
            item, kind = items[picks[n]], kinds[n]
            base = "127.0.0.1:9" if kind == "refused" else f"{hosts[host_of[n]]}:{port}"
            urls.append(f"http://{base}/{kind}/{n}/{item.name}")
            texts.append(f"photo {n} of a {('red', 'blue', 'green', 'grey')[n % 4]} thing")
            other = items[(picks[n] + 1) % len(items)]
            shas.append(other.sha256 if kind == "changed" else item.sha256)
            widths.append(item.width)
            heights.append(item.height)
        count = hi - lo
        table = pa.table(
            {
                "uid": [
                    hashlib.md5((t + u).encode()).hexdigest()
                    for t, u in zip(texts, urls, strict=True)
                ],
                "url": urls,
                "text": texts,
                "original_width": widths,
                "original_height": heights,
                "clip_b32_similarity_score": pa.array([0.3] * count, pa.float32()),
                "clip_l14_similarity_score": pa.array([0.3] * count, pa.float32()),
                "face_bboxes": pa.array([[]] * count, pa.list_(pa.list_(pa.float64()))),
                "sha256": shas,
            },
            schema=DATACOMP_SCHEMA,
        )
        name = hashlib.md5(f"rehearsal-{rows}-{f}".encode()).hexdigest()
        pq.write_table(table, folder / f"{name}.parquet", row_group_size=8192)
    values, counts = np.unique(kinds, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts, strict=True)}
