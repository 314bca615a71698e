"""The one guard between untrusted image bytes and Pillow's decoders.

Reads: encoded bytes from anywhere (a downloaded body, an uploaded query image).
Guarantees: ``open_checked`` parses only the header; an image over ``max_pixels`` (width times
height, known before any pixel is decoded) is refused as ``decompression_bomb``, whatever
Pillow's own global threshold says. ``refusal`` names any failure of opening or decoding with
a reason from ``reasons`` (``not_an_image``, ``truncated_image``, ``decode_error``,
``decompression_bomb``) and a sentence a person can read. The images stage and the search
service both go through here, so both apply the same limits in the same way.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, UnidentifiedImageError

from clip_assets.download import reasons


class ImageRefused(ValueError):
    """Bytes that will not be decoded; ``reason`` is from ``clip_assets.download.reasons``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def open_checked(body: bytes, max_pixels: int) -> Image.Image:
    """Open ``body`` lazily (header only); raises ``ImageRefused`` over ``max_pixels``."""
    try:
        with _quiet():
            img = Image.open(io.BytesIO(body))
    except Exception as error:
        raise refusal(error) from error
    width, height = img.size
    if width * height > max_pixels:
        raise ImageRefused(
            reasons.DECOMPRESSION_BOMB,
            f"the image is {width}x{height} = {width * height:,} pixels, "
            f"over the {max_pixels:,}-pixel limit",
        )
    return img


def decode_checked(body: bytes, max_pixels: int) -> Image.Image:
    """``open_checked`` and then decode every pixel; raises ``ImageRefused``."""
    img = open_checked(body, max_pixels)
    try:
        with _quiet():
            img.load()  # an animated GIF checks each frame's size here
    except Exception as error:
        raise refusal(error) from error
    return img


@contextmanager
def _quiet() -> Iterator[None]:
    """Pillow's bomb warnings silenced: our limit decides, the warning would only repeat it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def refusal(error: Exception) -> ImageRefused:
    """The ``ImageRefused`` for an error raised while opening or decoding untrusted bytes."""
    if isinstance(error, ImageRefused):
        return error
    if isinstance(error, Image.DecompressionBombError):
        message = f"the image is a decompression bomb: {error}"
        return ImageRefused(reasons.DECOMPRESSION_BOMB, message)
    if isinstance(error, UnidentifiedImageError):
        return ImageRefused(reasons.NOT_AN_IMAGE, "the bytes are not an image Pillow can read")
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and ("truncated" in text or "broken data stream" in text):
        return ImageRefused(reasons.TRUNCATED_IMAGE, f"the image is truncated: {text}")
    # Untrusted bytes reach a large C decoder: any failure is the image's.
    return ImageRefused(reasons.DECODE_ERROR, f"the image could not be decoded: {text}")
