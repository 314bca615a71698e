"""Real image bytes for the demo, the tests and the benchmark.

Every function reads only its arguments and returns encoded bytes (or a Pillow image); nothing is
written to disk. ``picture`` content is a gradient plus random shapes drawn from ``seed``, so two
seeds give visibly different pictures (and different CLIP embeddings) while one seed is
reproducible; ``encode`` turns any Pillow image (a drawn scene, say) into served bytes.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB picture: a seeded two-colour gradient with a dozen random shapes on top."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.integers(0, 256, size=(2, 3))
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    s = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    mix = (t + s) / 2
    pixels = (c0 * (1 - mix) + c1 * mix).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, x1 = sorted(rng.integers(0, max(width, 2), size=2))
        y0, y1 = sorted(rng.integers(0, max(height, 2), size=2))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill)
    return img


def jpeg(
    width: int,
    height: int,
    seed: int = 0,
    *,
    quality: int = 90,
    progressive: bool = False,
    mode: str = "RGB",
    orientation: int | None = None,
) -> bytes:
    """JPEG bytes; ``mode`` "RGB", "L" or "CMYK"; ``orientation`` sets the EXIF tag (1-8)."""
    img = picture(width, height, seed).convert(mode)
    kwargs: dict[str, object] = {"quality": quality, "progressive": progressive}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    return _encode(img, "JPEG", **kwargs)


def png(width: int, height: int, seed: int = 0, *, mode: str = "RGB") -> bytes:
    """PNG bytes; ``mode`` "RGB", "RGBA", "L", "I;16" (16-bit gray) or "P" (palette with
    a transparent entry)."""
    base = picture(width, height, seed)
    if mode == "P":
        img = base.quantize(colors=16)
        return _encode(img, "PNG", transparency=0)
    if mode == "I;16":
        gray = np.asarray(base.convert("L"), dtype=np.uint16) * 257
        return _encode(Image.fromarray(gray.astype("<u2")), "PNG")
    if mode == "RGBA":
        img = base.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize((width, height)))
        return _encode(img, "PNG")
    return _encode(base.convert(mode), "PNG")


def webp(width: int, height: int, seed: int = 0, *, quality: int = 80) -> bytes:
    """Lossy WebP bytes."""
    return _encode(picture(width, height, seed), "WEBP", quality=quality)


def gif(width: int, height: int, seed: int = 0, *, frames: int = 3) -> bytes:
    """An animated GIF; frame ``i`` is ``picture(seed + i)``."""
    imgs = [picture(width, height, seed + i).convert("P") for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return buf.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` fraction of ``data``: a download cut off mid-image."""
    return data[: max(1, int(len(data) * keep))]


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny, well-formed PNG whose header declares ``width`` x ``height`` 1-bit pixels.

    Only one row of data follows; a decoder that trusts the header would allocate the full
    raster, which is exactly what the downloader must refuse before decoding.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (width + 7) // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row))
        + _chunk(b"IEND", b"")
    )


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of ``pixels`` (uint16, (H, W) grey, or (H, W, C) with C = 2 grey+alpha,
    3 RGB, 4 RGBA): Pillow cannot write 16-bit colour PNGs, so the chunks are written here."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").reshape(height, width * channels)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


#: Pillow's format names for the content types ``encode`` writes.
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def encode(img: Image.Image, content_type: str) -> bytes:
    """``img`` as JPEG (quality 90), PNG or lossy WebP (quality 80) bytes."""
    quality = {"image/jpeg": {"quality": 90}, "image/webp": {"quality": 80}}
    return _encode(img, FORMATS[content_type], **quality.get(content_type, {}))


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()
