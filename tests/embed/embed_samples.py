"""Real encoded test images, photo-like enough that resampling differences show."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

#: Decoded sizes (height, width) like the images stage stores: shortest side 256, plus odd ones.
SIZES = [(256, 256), (256, 341), (384, 256), (256, 256), (256, 455), (100, 90), (256, 257)]


def make_image(height: int, width: int, seed: int, mode: str = "RGB") -> Image.Image:
    """A photo-like image: smooth gradients, hard-edged shapes and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack(
        [
            np.sin(xx * rng.uniform(2, 9) + c) * 0.5 + 0.5 * np.cos(yy * rng.uniform(2, 9))
            for c in range(3)
        ],
        axis=-1,
    )
    pixels = np.clip((base * 0.5 + 0.5) * 255 + rng.normal(0, 8, base.shape), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 10)), int(rng.integers(0, height - 10))
        box = [
            x0,
            y0,
            x0 + int(rng.integers(5, width // 2)),
            y0 + int(rng.integers(5, height // 2)),
        ]
        draw.rectangle(box, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image.convert(mode)


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()
