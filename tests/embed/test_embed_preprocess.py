"""Both preprocessing paths against open_clip's own ``preprocess``, for every resize mode: the
Pillow path (CPU) exactly, the tensor path (GPU code, run here on CPU tensors) with Pillow's
arithmetic: equal pixels for shortest-side resizes, a few levels where Pillow 13 changes the
order of its two passes."""

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
    pillow = ours.pil_batch(open_images(jpegs))
    assert torch.equal(ours.normalize(pillow), references)
    tensor_path = ours.resize_batch([decode_cpu(data) for data in jpegs])
    assert tensor_path.shape == pillow.shape and tensor_path.dtype == torch.uint8
    levels = (tensor_path.int() - pillow.int()).abs()
    # Same geometry and weights; Pillow 13 runs the vertical pass first for some size pairs
    # (squash and longest modes here), which moves a few pixels by a few levels.
    assert levels.max() <= (0 if resize_mode == "shortest" else 6)
    assert (levels > 0).float().mean() < 0.05
    for pixels, expected in zip(ours.normalize(tensor_path), references, strict=True):
        assert torch.cosine_similarity(pixels.flatten(), expected.flatten(), dim=0) > 0.9999


def test_stored_images_of_many_widths_resize_like_pillow_in_one_pass():
    """256 px shortest side, a different aspect ratio each, as a stored partition holds."""
    prep = Preprocessing.from_open_clip({"size": 224, "mean": MEAN, "std": STD})
    shapes = [(256, 256 + 37 * i) for i in range(8)] + [(256 + 29 * i, 256) for i in range(1, 8)]
    jpegs = [encode(make_image(h, w, seed=i)) for i, (h, w) in enumerate(shapes)]
    expected = prep.pil_batch(open_images(jpegs))
    assert torch.equal(prep.resize_batch([decode_cpu(data) for data in jpegs]), expected)


def test_padding_takes_the_fill_colour_on_both_paths():
    prep = Preprocessing.from_open_clip(
        {"size": 224, "mean": MEAN, "std": STD, "resize_mode": "longest", "fill_color": 200}
    )
    data = encode(make_image(100, 300, seed=4))  # resized to 224 x 75: bands above and below
    pillow = prep.pil_batch(open_images([data]))[0]
    tensor_path = prep.resize_batch([decode_cpu(data)])[0]
    assert prep.placement(100, 300).top < 0
    for pixels in (pillow, tensor_path):
        assert torch.all(pixels[:, :60] == 200) and torch.all(pixels[:, -60:] == 200)
    assert (tensor_path.int() - pillow.int()).abs().max() <= 6


def test_non_square_shortest_size_resizes_bicubic_as_open_clip_does(jpegs):
    # open_clip ignores the configured interpolation for this case; both paths must too.
    prep = Preprocessing.from_open_clip(
        {"size": (300, 200), "mean": MEAN, "std": STD, "interpolation": "bilinear"}
    )
    expected = prep.pil_batch(open_images(jpegs))
    assert torch.equal(prep.resize_batch([decode_cpu(data) for data in jpegs]), expected)


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
