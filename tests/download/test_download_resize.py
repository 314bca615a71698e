"""Decode, check, resize and encode: bytes in, bytes out, no network."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.resize import process
from clip_assets.offline import images

DEFAULT = DownloadSettings()


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(images.jpeg(400, 300, 1), id="jpeg"),
        pytest.param(images.jpeg(400, 300, 2, progressive=True), id="progressive-jpeg"),
        pytest.param(images.jpeg(400, 300, 3, mode="CMYK"), id="cmyk-jpeg"),
        pytest.param(images.jpeg(400, 300, 4, mode="L"), id="grayscale-jpeg"),
        pytest.param(images.png(400, 300, 5, mode="I;16"), id="16-bit-png"),
        pytest.param(images.png(400, 300, 6, mode="P"), id="palette-alpha-png"),
        pytest.param(images.png(400, 300, 7, mode="RGBA"), id="rgba-png"),
        pytest.param(images.webp(400, 300, 8), id="webp"),
        pytest.param(images.gif(400, 300, 9), id="gif"),
    ],
)
def test_every_format_becomes_an_rgb_jpeg_with_shortest_side_256(body: bytes) -> None:
    out = process(body, DEFAULT)
    assert out.reason is None
    img = decoded(out.image)
    assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (341, 256))
    assert (out.width, out.height, out.original_width, out.original_height) == (341, 256, 400, 300)


def test_16_bit_png_keeps_its_brightness() -> None:
    """Pillow clips 16-bit values when converting naively; we scale them instead."""
    eight = np.asarray(decoded(process(images.png(200, 200, 3, mode="L"), DEFAULT).image))
    sixteen = np.asarray(decoded(process(images.png(200, 200, 3, mode="I;16"), DEFAULT).image))
    assert abs(float(eight.mean()) - float(sixteen.mean())) < 3


def test_gif_keeps_the_first_frame() -> None:
    first = np.asarray(decoded(process(images.gif(64, 64, 10, frames=1), DEFAULT).image))
    animated = np.asarray(decoded(process(images.gif(64, 64, 10, frames=3), DEFAULT).image))
    assert np.abs(first.astype(int) - animated.astype(int)).mean() < 3


def test_transparent_pixels_become_white() -> None:
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    buf = io.BytesIO()
    clear.save(buf, "PNG")
    assert decoded(process(buf.getvalue(), DEFAULT).image).getpixel((10, 10)) >= (250, 250, 250)


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (384, 256)), (6, (256, 384)), (8, (256, 384))]
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int]) -> None:
    out = process(images.jpeg(600, 400, 1, orientation=orientation), DEFAULT)
    assert decoded(out.image).size == size
    assert (out.original_width, out.original_height) == (size[0] * 400 // 256, size[1] * 400 // 256)


@pytest.mark.parametrize(
    ("mode", "only_if_bigger", "source", "expected"),
    [
        ("no", False, (640, 480), (640, 480)),
        ("keep_ratio", False, (640, 480), (341, 256)),
        ("keep_ratio", False, (100, 50), (512, 256)),
        ("keep_ratio", True, (100, 50), (100, 50)),
        ("keep_ratio_largest", False, (640, 480), (256, 192)),
        ("keep_ratio_largest", True, (200, 100), (200, 100)),
        ("center_crop", False, (640, 480), (256, 256)),
        ("center_crop", True, (200, 100), (200, 100)),
        ("border", False, (640, 480), (256, 256)),
        ("border", False, (100, 50), (256, 256)),
    ],
)
def test_resize_modes(mode, only_if_bigger, source, expected) -> None:
    settings = replace(DEFAULT, resize_mode=mode, resize_only_if_bigger=only_if_bigger)
    out = process(images.jpeg(*source, seed=1), settings)
    assert decoded(out.image).size == expected == (out.width, out.height)


def test_border_pads_with_black() -> None:
    settings = replace(DEFAULT, resize_mode="border")
    img = decoded(process(images.jpeg(640, 320, 1), settings).image)
    assert max(img.getpixel((128, 2))) < 10 and img.size == (256, 256)


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("webp", "WEBP")])
def test_encode_format(fmt: str, pil_format: str) -> None:
    out = process(images.jpeg(300, 300, 1), replace(DEFAULT, encode_format=fmt))
    assert decoded(out.image).format == pil_format


def test_encode_quality_changes_the_bytes() -> None:
    body = images.jpeg(600, 600, 1)
    low = process(body, replace(DEFAULT, encode_quality=30)).image
    high = process(body, replace(DEFAULT, encode_quality=95)).image
    assert len(low) < len(high)


@pytest.mark.parametrize(
    ("body", "settings", "reason"),
    [
        (images.png_bomb(), DEFAULT, "decompression_bomb"),
        (images.jpeg(200, 200), replace(DEFAULT, max_pixels=200 * 199), "decompression_bomb"),
        (b"<html>not an image</html>", DEFAULT, "not_an_image"),
        (b"", DEFAULT, "not_an_image"),
        (images.truncated(images.jpeg(400, 400, 1)), DEFAULT, "truncated_image"),
        (images.truncated(images.png(400, 400, 1)), DEFAULT, "truncated_image"),
        (images.jpeg(100, 40), replace(DEFAULT, min_image_size=50), "too_small"),
        (images.jpeg(300, 40), replace(DEFAULT, max_aspect_ratio=3.0), "bad_aspect_ratio"),
    ],
    ids=[
        "bomb",
        "max-pixels",
        "html",
        "empty",
        "truncated-jpeg",
        "truncated-png",
        "small",
        "ratio",
    ],
)
def test_refusals(body: bytes, settings: DownloadSettings, reason: str) -> None:
    out = process(body, settings)
    assert (out.reason, out.image) == (reason, None)


def test_face_blurring_changes_only_the_face() -> None:
    body = images.jpeg(512, 512, 11)
    face = [[0.25, 0.25, 0.5, 0.5]]
    plain = np.asarray(decoded(process(body, DEFAULT, face).image)).astype(int)
    blurred = np.asarray(
        decoded(process(body, replace(DEFAULT, blur_faces=True), face).image)
    ).astype(int)
    inside = np.abs(plain[70:122, 70:122] - blurred[70:122, 70:122]).mean()
    outside = np.abs(plain[150:, 150:] - blurred[150:, 150:]).mean()
    assert inside > 2 and outside < 1
