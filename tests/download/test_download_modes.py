"""Every pixel mode Pillow opens from a PNG or TIFF becomes faithful 8-bit RGB.

Each source is made from known numbers, and the stored image (lossless PNG, no resize) is
compared with a reference conversion written here in numpy: mean absolute difference under 3.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.resize import process
from clip_assets.offline import images

LOSSLESS = replace(DownloadSettings(), resize_mode="no", encode_format="png")
H, W = 48, 64
RNG = np.random.default_rng(7)
U8 = RNG.integers(0, 256, (H, W, 4), dtype=np.uint8)
U16 = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(float) / 255
    return rgb.astype(float) * a + 255 * (1 - a)


def grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(float)[..., None], 3, axis=2)


def eight(values16: np.ndarray) -> np.ndarray:
    return np.rint(values16.astype(float) / 257)


PALETTE = RNG.integers(0, 256, 768, dtype=np.uint8)
INDEX = RNG.integers(0, 256, (H, W), dtype=np.uint8)


def palette_image(alpha: bool) -> Image.Image:
    img = Image.fromarray(INDEX, "P")
    img.putpalette(PALETTE.tolist())
    if alpha:
        img = img.convert("PA")
        img.putalpha(Image.fromarray(U8[..., 3]))
    return img


def encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


CMYK = U8.astype(float) / 255
CASES = {
    "1": (
        lambda: encode(Image.fromarray(U8[..., 0] > 127), "PNG"),
        lambda: grey((U8[..., 0] > 127) * 255),
    ),
    "L": (lambda: encode(Image.fromarray(U8[..., 0], "L"), "PNG"), lambda: grey(U8[..., 0])),
    "LA": (
        lambda: encode(Image.fromarray(U8[..., :2], "LA"), "PNG"),
        lambda: on_white(grey(U8[..., 0]), U8[..., 1]),
    ),
    "P": (
        lambda: encode(palette_image(False), "PNG"),
        lambda: PALETTE.reshape(256, 3)[INDEX].astype(float),
    ),
    "PA": (
        lambda: encode(palette_image(True), "TIFF"),
        lambda: on_white(PALETTE.reshape(256, 3)[INDEX], U8[..., 3]),
    ),
    "RGB": (lambda: encode(Image.fromarray(U8[..., :3], "RGB"), "PNG"), lambda: U8[..., :3]),
    "RGBA": (
        lambda: encode(Image.fromarray(U8, "RGBA"), "PNG"),
        lambda: on_white(U8[..., :3], U8[..., 3]),
    ),
    "I;16": (lambda: images.png16(U16[..., 0]), lambda: grey(eight(U16[..., 0]))),
    "I;16B": (
        lambda: encode(
            Image.frombytes("I;16B", (W, H), U16[..., 0].astype(">u2").tobytes()), "TIFF"
        ),
        lambda: grey(eight(U16[..., 0])),
    ),
    "I": (
        lambda: encode(Image.fromarray(U16[..., 0].astype(np.int32), "I"), "TIFF"),
        lambda: grey(eight(U16[..., 0])),
    ),
    "F": (
        lambda: encode(Image.fromarray((U16[..., 0] / 65535).astype(np.float32), "F"), "TIFF"),
        lambda: grey(eight(U16[..., 0])),
    ),
    "CMYK": (
        lambda: encode(Image.fromarray(U8, "CMYK"), "TIFF"),
        lambda: 255 * (1 - CMYK[..., :3]) * (1 - CMYK[..., 3:]),
    ),
    "16-bit RGB": (lambda: images.png16(U16[..., :3]), lambda: eight(U16[..., :3])),
    "16-bit RGBA": (
        lambda: images.png16(U16),
        lambda: on_white(eight(U16[..., :3]), eight(U16[..., 3])),
    ),
    "16-bit LA": (
        lambda: images.png16(U16[..., :2]),
        lambda: on_white(grey(eight(U16[..., 0])), eight(U16[..., 1])),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_mode_becomes_faithful_8_bit_rgb(case: str) -> None:
    make, reference = CASES[case]
    out = process(make(), LOSSLESS)
    assert out.reason is None, out.reason
    stored = Image.open(io.BytesIO(out.image))
    assert (stored.mode, stored.size) == ("RGB", (W, H))
    difference = np.abs(np.asarray(stored).astype(float) - reference()).mean()
    assert difference < 3, f"{case}: mean absolute difference {difference:.2f}"


def test_the_source_modes_are_the_ones_named() -> None:
    """Pillow opens each source in the mode the case is named for (so none is untested)."""
    opened = {case: Image.open(io.BytesIO(make())).mode for case, (make, _) in CASES.items()}
    named = {case: case for case in CASES if not case.startswith("16-bit")}
    assert {case: opened[case] for case in named} == named
    assert [opened[c] for c in ("16-bit RGB", "16-bit RGBA", "16-bit LA")] == [
        "RGB",
        "RGBA",
        "RGBA",
    ]
