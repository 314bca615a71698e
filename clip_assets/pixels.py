"""Decoded images of any mode to 8-bit RGB pixels, the same faithful way in every stage.

(Opening untrusted bytes with a pixel limit is ``clip_assets.download.decode_guard``'s job.)
``to_rgb(image)`` converts any mode Pillow opens to 8-bit RGB faithfully: 16-bit
channels keep their high byte (Pillow clips them at 255 instead: a 16-bit grey PNG came out
white), 32-bit integer images are read as 16-bit data (what TIFF and old Pillow versions give
for 16-bit files), float images as 0..1 when every value lies in it and as 0..255 otherwise,
transparency is composited on white, CMYK and palettes go through Pillow. Used by the images
stage (``download.resize``) and the embeddings stage (``embed.decode``); reads and writes
nothing else.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB (see the module docstring for how each mode maps)."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        image = Image.fromarray(_eight_bit(np.asarray(image), image.mode), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _eight_bit(values: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if values.size and values.min() >= 0 and values.max() <= 1 else 1.0
        return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    if mode == "I":
        values = np.clip(values, 0, 65535)
    return (values.astype(np.uint16) >> 8).astype(np.uint8)
