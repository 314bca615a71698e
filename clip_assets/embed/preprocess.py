"""open_clip's inference preprocessing as uint8 batches, two ways: Pillow (CPU) and tensors (GPU).

Reads: a model's ``preprocess_cfg`` (size, mean, std, interpolation, resize_mode, fill_color).
Writes: uint8 (N, 3, H, W) batches at the model's input size; normalisation is left to the
device (``Preprocessing.normalize``) so a GPU receives 4x fewer bytes than float pixels.
Guarantees: ``pil_batch`` runs open_clip's own resize/crop/convert transforms, so its pixels
equal open_clip's ``preprocess`` exactly (and Pillow's resize costs a third of torch's on a
CPU). ``resize_batch`` redoes that geometry on tensors for images already on a GPU: the same
output sizes and crop offsets (``placement``) and Pillow's own weights and rounding
(resample.py), so for RGB images its pixels equal ``pil_batch``'s within one level, in a
fixed number of tensor operations per batch. ``normalize`` keeps its constants on each device,
so normalising a GPU batch queues work without waiting for the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import open_clip
import torch
from open_clip.transform import MaybeToTensor
from PIL import Image

from clip_assets.embed.resample import Placement, resample_batch

RESIZE_MODES = ("shortest", "longest", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """One model's preprocessing; ``size`` is (height, width)."""

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_open_clip(cls, cfg: dict) -> Preprocessing:
        """From ``open_clip.get_model_preprocess_cfg(model)``."""
        size = cfg["size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        resize_mode = cfg.get("resize_mode") or "shortest"
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize_mode {resize_mode!r}")
        return cls(
            size=size,
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            # open_clip maps everything but "bilinear" (including "random") to bicubic at
            # inference.
            interpolation="bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic",
            resize_mode=resize_mode,
            fill_color=int(cfg.get("fill_color") or 0),
        )

    def describe(self) -> dict:
        """JSON-ready description for lineage metadata."""
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "antialias": True,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
            "steps": "decode RGB -> resize -> center crop/pad -> /255 -> normalize(mean, std)",
        }

    @cached_property
    def _pil_geometry(self) -> list:
        # open_clip's own inference transform, cut before ToTensor/Normalize: the same objects
        # open_clip's preprocess runs, so the pixels cannot drift from it.
        transform = open_clip.image_transform(
            self.size,
            is_train=False,
            mean=self.mean,
            std=self.std,
            resize_mode=self.resize_mode,
            interpolation=self.interpolation,
            fill_color=self.fill_color,
        )
        steps = transform.transforms
        return steps[: next(i for i, t in enumerate(steps) if isinstance(t, MaybeToTensor))]

    def pil_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images of any size and mode -> one uint8 (N, 3, *size) batch, input order."""
        arrays = []
        for image in images:
            for step in self._pil_geometry:
                image = step(image)
            arrays.append(np.asarray(image))
        if not arrays:
            return torch.empty((0, 3, *self.size), dtype=torch.uint8)
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def placement(self, height: int, width: int) -> Placement:
        """Where open_clip's transform puts an image of this size: resized size, crop start.

        The resize follows torchvision's ``Resize(int)`` (shortest side to size, longer side
        truncated) or open_clip's ``ResizeKeepRatio`` (each side rounded); the crop or padding
        follows ``center_crop_or_pad`` (negative offsets are padding before the image).
        """
        if self.resize_mode == "squash":
            resized = self.size
        elif self.resize_mode == "shortest" and self.size[0] == self.size[1]:
            side = self.size[0]
            if width <= height:
                resized = (int(side * height / width), side)
            else:
                resized = (side, int(side * width / height))
        else:
            ratio_h, ratio_w = height / self.size[0], width / self.size[1]
            longest = self.resize_mode == "longest"
            ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
            resized = (round(height / ratio), round(width / ratio))
        top, left = (_crop_start(r, s) for r, s in zip(resized, self.size, strict=True))
        return Placement(height=resized[0], width=resized[1], top=top, left=left)

    def resize_batch(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 (3, H, W) images of any sizes -> one uint8 (N, 3, *size) batch, input order."""
        placements = [self.placement(*image.shape[-2:]) for image in images]
        return resample_batch(images, placements, self.size, self._resize_filter, self.fill_color)

    @property
    def _resize_filter(self) -> str:
        # open_clip builds ResizeKeepRatio without its interpolation argument for a non-square
        # "shortest" size, so that case is always bicubic there.
        if self.resize_mode == "shortest" and self.size[0] != self.size[1]:
            return "bicubic"
        return self.interpolation

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 ``(x / 255 - mean) / std`` on the batch's device."""
        mean, std = self._constants(batch.device)
        return (batch.float() / 255.0 - mean) / std

    @cached_property
    def _constants_by_device(self) -> dict[torch.device, tuple[torch.Tensor, torch.Tensor]]:
        return {}

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Made once per device: building them per batch copied two host lists to the GPU,
        # and each such copy waits for everything queued before it (the previous batch's
        # forward pass), so the model never ran ahead of the Python loop.
        constants = self._constants_by_device.get(device)
        if constants is None:
            constants = (
                torch.tensor(self.mean, device=device).view(1, 3, 1, 1),
                torch.tensor(self.std, device=device).view(1, 3, 1, 1),
            )
            self._constants_by_device[device] = constants
        return constants


def _crop_start(resized: int, out: int) -> int:
    """First resized pixel in the output: ``center_crop_or_pad``'s offset, minus any padding."""
    if resized < out:
        return -((out - resized) // 2)
    return round((resized - out) / 2.0)  # Python's round, as center_crop_or_pad uses
