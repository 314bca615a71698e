"""Both preprocessing paths against open_clip's own ``preprocess``, for every resize mode: the
Pillow path (CPU) exactly, the tensor path (GPU code, run here on CPU tensors) within rounding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from embed_samples import encode, make_image
from open_clip.transform import image_transform
from PIL import Image

from clip_assets.embed.decode import ImageDecodeError, decode_cpu, decode_on_device, open_images
from clip_assets.embed.preprocess import Preprocessing

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.mark.parametrize(
    ("resize_mode", "size"),
    [("shortest", 224), ("shortest", (224, 256)), ("squash", 224), ("longest", (200, 240))],
)
def test_preprocessing_matches_open_clip(jpegs, resize_mode, size):
    cfg = {
        "size": size,
        "mean": MEAN,
        "std": STD,
        "interpolation": "bicubic",
        "resize_mode": resize_mode,
    }
    ours = Preprocessing.from_open_clip(cfg)
    reference = image_transform(
        size, is_train=False, mean=MEAN, std=STD, resize_mode=resize_mode, interpolation="bicubic"
    )
    references = torch.stack([reference(Image.open(io.BytesIO(data))) for data in jpegs])
    assert torch.equal(ours.normalize(ours.pil_batch(open_images(jpegs))), references)
    tensor_path = ours.normalize(ours.resize_batch([decode_cpu(data) for data in jpegs]))
    for pixels, expected in zip(tensor_path, references, strict=True):
        assert pixels.shape == expected.shape
        # Same geometry; resampling differs only by rounding (PIL rounds between passes).
        max_levels = ((pixels - expected).abs() * torch.tensor(STD).view(3, 1, 1) * 255).max()
        assert max_levels <= 6
        assert torch.cosine_similarity(pixels.flatten(), expected.flatten(), dim=0) > 0.9999


def test_resize_batch_keeps_input_order_across_shape_groups(jpegs):
    prep = Preprocessing.from_open_clip({"size": 224, "mean": MEAN, "std": STD})
    decoded = [decode_cpu(data) for data in jpegs]
    together = prep.resize_batch(decoded)
    one_by_one = torch.cat([prep.resize_batch([image]) for image in decoded])
    assert torch.equal(together, one_by_one)
    assert prep.resize_batch([]).shape == (0, 3, 224, 224)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("JPEG", "L"), ("PNG", "RGBA"), ("PNG", "P"), ("WEBP", "RGB")]
)
def test_decode_gives_rgb_uint8_like_pillow(fmt, mode):
    data = encode(make_image(64, 80, seed=3, mode=mode), fmt)
    pixels = decode_cpu(data)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 64, 80)
    assert np.array_equal(pixels.permute(1, 2, 0).numpy(), expected)


def test_undecodable_bytes_name_their_position(jpegs):
    truncated = jpegs[0][: len(jpegs[0]) // 3]
    for bad in (b"not an image", truncated):
        for decode in (open_images, lambda images: decode_on_device(images, torch.device("cpu"))):
            with pytest.raises(ImageDecodeError) as info:
                decode([jpegs[0], bad, jpegs[1]])
            assert info.value.index == 1
