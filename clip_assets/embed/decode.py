"""Encoded image bytes -> decoded images: PIL images on the CPU, uint8 tensors on a GPU.

Reads: any bytes Pillow opens (JPEG, PNG, WebP, GIF, ...).
Guarantees: no image is decoded whose header declares more than ``max_pixels`` pixels (the
downloader's limit, through its ``decode_guard``): it raises ``ImageDecodeError`` first.
``open_images`` gives exactly what open_clip's users pass to its ``preprocess``
(``PIL.Image.open``, fully loaded), except that 16-bit and float images come as faithful 8-bit
RGB (``pixels.to_rgb``; open_clip's ``convert("RGB")`` would clip them white).
``decode_on_device`` gives uint8 (3, H, W) RGB tensors; its CPU fallback uses the same
libjpeg-turbo as Pillow, so pixels equal ``pixels.to_rgb(Image.open(...))``. EXIF orientation
is ignored everywhere, as open_clip's preprocessing ignores it. Undecodable bytes raise
``ImageDecodeError`` with their position.
``check_device_decoder`` fails loudly where nvjpeg cannot decode on a GPU at all.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, encode_jpeg

from clip_assets.download.decode_guard import open_checked
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.pixels import to_rgb

#: The downloader's pixel limit: what the images stage let through decodes here too.
MAX_PIXELS = DownloadSettings.max_pixels

_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageDecodeError(ValueError):
    """Bytes that no decoder could read; ``index`` is their position in the batch."""

    def __init__(self, index: int, cause: Exception) -> None:
        super().__init__(f"image {index} could not be decoded: {cause}")
        self.index = index


_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def open_images(images: Sequence[bytes], max_pixels: int = MAX_PIXELS) -> list[Image.Image]:
    """Open and fully decode each image with Pillow (truncated files fail here, not later)."""
    opened = []
    for i, data in enumerate(images):
        try:
            image = open_checked(data, max_pixels)
            image.load()
            if image.mode in _HIGH_DEPTH:
                image = to_rgb(image)
        except Exception as err:
            raise ImageDecodeError(i, err) from err
        opened.append(image)
    return opened


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 (3, H, W) tensor after ``pixels.to_rgb``."""
    array = np.asarray(to_rgb(image))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _check_size(data: bytes, max_pixels: int) -> None:
    """Reads the header only: raises before a decoder allocates an oversize raster."""
    open_checked(data, max_pixels).close()


def decode_cpu(data: bytes, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode one image on the CPU; Pillow takes what torchvision cannot (or returns 16-bit)."""
    _check_size(data, max_pixels)
    try:
        pixels = decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB
        )
        if pixels.dtype == torch.uint8 and pixels.shape[0] == 3:
            return pixels
    except (RuntimeError, ValueError):
        pass
    with Image.open(io.BytesIO(data)) as image:
        return _pil_to_tensor(image)


def check_device_decoder(device: torch.device) -> None:
    """Raise ``RuntimeError`` unless nvjpeg decodes a JPEG on this CUDA device.

    ``decode_on_device`` falls back to the CPU when nvjpeg rejects a batch (a corrupt JPEG
    among good ones); without this check, a torchvision built without nvjpeg would send every
    image down that fallback and the GPU path would quietly run on the CPU.
    """
    probe = encode_jpeg(torch.full((3, 16, 16), 128, dtype=torch.uint8))
    try:
        decode_jpeg([probe], mode=ImageReadMode.RGB, device=device)
    except RuntimeError as err:
        raise RuntimeError(
            f"GPU JPEG decoding (torchvision's nvjpeg) does not work on {device}: {err}; "
            "use preprocess='pillow' to decode on the CPU"
        ) from err


def decode_on_device(
    images: Sequence[bytes], device: torch.device, max_pixels: int = MAX_PIXELS
) -> list[torch.Tensor]:
    """Decode a batch to uint8 (3, H, W) tensors on ``device``.

    On a GPU, JPEGs decode together in one nvjpeg call; the rest, and a batch nvjpeg
    rejects, decode on the CPU and are copied over. Raises ``ImageDecodeError``, also for an
    image over ``max_pixels`` (checked from every header before anything is decoded).
    """
    for i, data in enumerate(images):
        try:
            _check_size(data, max_pixels)
        except Exception as err:
            raise ImageDecodeError(i, err) from err
    decoded: list[torch.Tensor | None] = [None] * len(images)
    if device.type == "cuda":
        jpegs = [i for i, data in enumerate(images) if data[:3] == _JPEG_MAGIC]
        if jpegs:
            try:
                on_gpu = decode_jpeg(
                    [torch.frombuffer(bytearray(images[i]), dtype=torch.uint8) for i in jpegs],
                    mode=ImageReadMode.RGB,
                    device=device,
                )
                for i, pixels in zip(jpegs, on_gpu, strict=True):
                    decoded[i] = pixels
            except RuntimeError:
                pass  # a corrupt or unsupported JPEG fails the whole call; the CPU retries each
    for i, data in enumerate(images):
        if decoded[i] is None:
            try:
                decoded[i] = decode_cpu(data, max_pixels).to(device)
            except Exception as err:
                raise ImageDecodeError(i, err) from err
    return decoded  # type: ignore[return-value]
