"""open_clip's inference preprocessing as uint8 batches, two ways: Pillow (CPU) and tensors (GPU).

Reads: a model's ``preprocess_cfg`` (size, mean, std, interpolation, resize_mode, fill_color).
Writes: uint8 (N, 3, H, W) batches at the model's input size; normalisation is left to the
device (``Preprocessing.normalize``) so a GPU receives 4x fewer bytes than float pixels.
Guarantees: ``pil_batch`` runs open_clip's own resize/crop/convert transforms, so its pixels
equal open_clip's ``preprocess`` exactly (and Pillow's resize costs a third of torch's on a
CPU). ``resize_batch`` redoes that geometry on tensors for images already on a GPU: identical
output sizes and crop offsets, antialiased resampling, within cosine 0.9999 of Pillow's
pixels; images sharing a decoded size (most, on stored datasets) are resized in one call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import open_clip
import torch
from open_clip.transform import MaybeToTensor, center_crop_or_pad
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

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

    def resize_target(self, height: int, width: int) -> list[int]:
        """The size argument open_clip's transform passes to ``resize`` for this input size."""
        if self.resize_mode == "squash":
            return list(self.size)
        if self.resize_mode == "shortest" and self.size[0] == self.size[1]:
            # torchvision's Resize(int): shortest side -> size, longer side truncated.
            return [self.size[0]]
        # open_clip's ResizeKeepRatio: scale by the shorter (longest=0) or longer (longest=1)
        # side's ratio, rounding each side.
        ratio_h, ratio_w = height / self.size[0], width / self.size[1]
        ratio = max(ratio_h, ratio_w) if self.resize_mode == "longest" else min(ratio_h, ratio_w)
        return [round(height / ratio), round(width / ratio)]

    def resize_batch(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 (3, H, W) images of any sizes -> one uint8 (N, 3, *size) batch, input order."""
        if not images:
            return torch.empty((0, 3, *self.size), dtype=torch.uint8)
        by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_shape[tuple(image.shape[-2:])].append(i)
        out = torch.empty((len(images), 3, *self.size), dtype=torch.uint8, device=images[0].device)
        interpolation = (
            InterpolationMode.BILINEAR
            if self.interpolation == "bilinear"
            else InterpolationMode.BICUBIC
        )
        for (height, width), indices in by_shape.items():
            group = torch.stack([images[i] for i in indices])
            resized = F.resize(
                group, self.resize_target(height, width), interpolation, antialias=True
            )
            out[indices] = center_crop_or_pad(resized, list(self.size), fill=self.fill_color)
        return out

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float32 ``(x / 255 - mean) / std`` on the batch's device."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch.float() / 255.0 - mean) / std
