"""The embeddings stage decodes with the downloader's care: a pixel limit read from the header,
and 16-bit images converted faithfully rather than clipped white."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_assets.download.decode_guard import ImageRefused
from clip_assets.embed.decode import ImageDecodeError, decode_cpu, decode_on_device, open_images
from clip_assets.offline import images


def test_an_image_bomb_is_refused_before_decoding() -> None:
    bomb, fine = images.png_bomb(12_000, 12_000), images.jpeg(64, 64, 1)
    with pytest.raises(ImageDecodeError) as caught:
        open_images([fine, bomb])
    assert caught.value.index == 1
    with pytest.raises(ImageDecodeError):
        decode_on_device([fine, bomb], torch.device("cpu"))
    with pytest.raises(ImageRefused, match="pixel limit"):
        decode_cpu(images.jpeg(64, 64, 1), max_pixels=64 * 63)


def test_16_bit_images_keep_their_tones() -> None:
    values = np.random.default_rng(3).integers(0, 65536, (32, 48, 3), dtype=np.uint16)
    grey, rgb = images.png16(values[..., 0]), images.png16(values)
    expected = np.rint(values / 257)
    tensor = decode_cpu(grey).permute(1, 2, 0).numpy().astype(float)
    assert np.abs(tensor - expected[..., :1]).mean() < 3
    assert np.abs(decode_cpu(rgb).permute(1, 2, 0).numpy() - expected).mean() < 3
    opened = np.asarray(open_images([grey])[0]).astype(float)
    assert np.abs(opened - np.repeat(expected[..., :1], 3, axis=2)).mean() < 3
