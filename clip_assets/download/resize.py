"""Bytes in, bytes out: decode a downloaded image, check it, resize it, re-encode it.

``process`` reads the raw body and the settings and returns a ``Processed`` holding either the
encoded image with its sizes or a ``reason`` (``not_an_image``, ``truncated_image``,
``decode_error``, ``decompression_bomb``, ``too_small``, ``bad_aspect_ratio``). It never raises
for bad input. Guarantees: the pixel count is checked from the header before any pixel is
decoded (``decode_guard``, shared with the search service); JPEGs are decoded at the smallest
DCT scale that still covers the output (draft mode), then area-averaged down or
Lanczos-filtered up; EXIF orientation is applied; the output is 8-bit RGB
(``clip_assets.pixels.to_rgb``: alpha composited on white, 16-bit and float channels converted
faithfully); animated images contribute their first frame. Resize modes follow img2dataset:
``no``, ``keep_ratio`` (shortest side = image_size), ``keep_ratio_largest`` (longest side =
image_size), ``center_crop`` (keep_ratio then a centred square), ``border`` (keep_ratio_largest
then padded with black to a square); with ``resize_only_if_bigger`` an image whose relevant side
is already <= image_size is left as is.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from clip_assets.download import reasons
from clip_assets.download.decode_guard import open_checked, refusal
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.pixels import to_rgb

_SAVE = {"jpg": ("JPEG", {}), "png": ("PNG", {}), "webp": ("WEBP", {})}
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that exchange width and height


@dataclass(frozen=True)
class Processed:
    """The stored image and its sizes, or the reason there is none."""

    image: bytes | None = None
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None


def process(
    body: bytes, settings: DownloadSettings, face_bboxes: Sequence[Sequence[float]] | None = None
) -> Processed:
    """Decodes, checks, resizes and encodes ``body`` as the settings say."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = open_checked(body, settings.max_pixels)
            return _process(img, settings, face_bboxes)
    except Exception as error:  # untrusted bytes reach a large C decoder: any failure is theirs
        return Processed(reason=refusal(error).reason)


def _process(
    img: Image.Image, s: DownloadSettings, face_bboxes: Sequence[Sequence[float]] | None
) -> Processed:
    width, height = img.size
    swapped = img.getexif().get(0x0112) in _SWAPPING_ORIENTATIONS
    ow, oh = (height, width) if swapped else (width, height)
    shaped = Processed(original_width=ow, original_height=oh)
    if min(ow, oh) < max(s.min_image_size, 1):
        return _fail(shaped, reasons.TOO_SMALL)
    if s.max_aspect_ratio is not None and max(ow, oh) / min(ow, oh) > s.max_aspect_ratio:
        return _fail(shaped, reasons.BAD_ASPECT_RATIO)
    scaled = _scaled_size(ow, oh, s)
    if scaled != (ow, oh) and img.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale while still covering the target.
        img.draft("RGB", (scaled[1], scaled[0]) if swapped else scaled)
    img.load()
    ImageOps.exif_transpose(img, in_place=True)  # in place: a copy per image costs ~5%
    img = to_rgb(img)
    if scaled != img.size:
        # Area averaging down and Lanczos up, as img2dataset (cv2 INTER_AREA / LANCZOS4) does:
        # DataComp's own images were made that way, and BOX costs a third of LANCZOS here.
        shrinking = scaled[0] < img.width
        img = img.resize(scaled, Image.Resampling.BOX if shrinking else Image.Resampling.LANCZOS)
    if s.blur_faces and face_bboxes:
        img = _blur(img, face_bboxes)
    img = _frame(img, s)
    fmt, options = _SAVE[s.encode_format]
    out = io.BytesIO()
    quality = {} if fmt == "PNG" else {"quality": s.encode_quality}
    img.save(out, fmt, **options, **quality)
    return Processed(out.getvalue(), None, img.width, img.height, ow, oh)


def _fail(shaped: Processed, reason: str) -> Processed:
    return Processed(
        reason=reason, original_width=shaped.original_width, original_height=shaped.original_height
    )


def _scaled_size(w: int, h: int, s: DownloadSettings) -> tuple[int, int]:
    """Size after the scaling step (before any crop or border)."""
    if s.resize_mode == "no":
        return w, h
    largest = s.resize_mode in ("keep_ratio_largest", "border")
    side = max(w, h) if largest else min(w, h)
    if s.resize_only_if_bigger and side <= s.image_size:
        return w, h
    ratio = s.image_size / side
    return max(1, round(w * ratio)), max(1, round(h * ratio))


def _frame(img: Image.Image, s: DownloadSettings) -> Image.Image:
    """Centre crop or border to a square of ``image_size`` where the mode asks for one."""
    size = s.image_size
    if s.resize_mode == "center_crop" and min(img.size) >= size:
        left, top = (img.width - size) // 2, (img.height - size) // 2
        return img.crop((left, top, left + size, top + size))
    if s.resize_mode == "border" and max(img.size) <= size:
        canvas = Image.new("RGB", (size, size))
        canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
        return canvas
    return img


def _blur(img: Image.Image, boxes: Sequence[Sequence[float]]) -> Image.Image:
    """Gaussian-blurs each face box (normalised 0..1 x0, y0, x1, y1) in place of the face."""
    img = img.copy()
    for box in boxes:
        if len(box) != 4:
            continue
        x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in box)
        area = (round(x0 * img.width), round(y0 * img.height))
        area += (round(x1 * img.width), round(y1 * img.height))
        if area[2] <= area[0] or area[3] <= area[1]:
            continue
        face = img.crop(area)
        radius = max(2, max(face.size) // 4)
        img.paste(face.filter(ImageFilter.GaussianBlur(radius)), area[:2])
    return img
