"""Pillow's resize-and-crop redone as batched matrix products, for decoded images on any device.

Reads: uint8 (3, H, W) images of any sizes and, per image, a ``Placement``: the size Pillow
resizes it to and where the output window starts in that resized image (negative: padding).
Writes: one uint8 (N, 3, out_h, out_w) batch, input order.
Guarantees: Pillow's own arithmetic (Resample.c): its weights (the filter widened by the scale
when shrinking, each row normalised, rounded to 22-bit fixed point), its integer sums (exact
here: see ``_FixedWeights``), rounding and clipping to 8 bits after the horizontal pass and
then the vertical one. So the pixels equal ``Image.resize`` then the crop wherever Pillow runs
the horizontal pass first: always before Pillow 13, and for the stored 256 px images we
checked on Pillow 13, which takes the vertical pass first for some other size pairs (there a
few levels differ). Padding takes ``fill``. The tensor work per batch is a fixed number of
operations plus one window copy per image, whatever mix of sizes the batch holds, and no
copy waits for the device: resizing one size group at a time costs about seven operations and
a waiting index copy per group, and a stored partition holds almost as many sizes as images
(each aspect ratio gives its own width at a 256 px shortest side: 164 in 256 images).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Filter half-widths at scale 1, Pillow's ``support`` values.
SUPPORTS = {"bicubic": 2.0, "bilinear": 1.0}
_BICUBIC_A = -0.5  # Pillow's bicubic (torch's non-antialiased bicubic uses -0.75)
_BUCKET = 32  # windows are padded up to a multiple of this, so similar images share a matmul
_PRECISION_BITS = 22  # Pillow's fixed-point fraction for 8-bit images (Resample.c)
_LOW_RANGE = 256  # fixed-point weights are split into high * 256 + low for exact float32 sums


@dataclass(frozen=True)
class Placement:
    """Where one image lands: resized to (height, width), output starting at (top, left)."""

    height: int
    width: int
    top: int
    left: int


@dataclass(frozen=True)
class _Axis:
    """One axis of one image: source and resized lengths, output offset, source window."""

    length: int
    resized: int
    offset: int
    start: int
    stop: int
    taps: int  # Pillow's ksize: the most source pixels one output pixel reads


def resample_batch(
    images: Sequence[torch.Tensor],
    placements: Sequence[Placement],
    out_size: tuple[int, int],
    interpolation: str = "bicubic",
    fill: int = 0,
) -> torch.Tensor:
    """Resize each image as ``placements`` say and cut the ``out_size`` window; see module."""
    if interpolation not in SUPPORTS:
        raise ValueError(f"interpolation must be one of {sorted(SUPPORTS)}, not {interpolation!r}")
    if not images:
        return torch.empty((0, 3, *out_size), dtype=torch.uint8)
    support = SUPPORTS[interpolation]
    axes = [
        (
            _axis(image.shape[-2], p.height, p.top, out_size[0], support),
            _axis(image.shape[-1], p.width, p.left, out_size[1], support),
        )
        for image, p in zip(images, placements, strict=True)
    ]
    # Square windows: landscape and portrait images of one shortest side share a bucket.
    buckets: dict[int, list[int]] = defaultdict(list)
    for i, (row, col) in enumerate(axes):
        buckets[_bucket(max(row.stop - row.start, col.stop - col.start))].append(i)
    parts = [
        _resample_bucket(images, axes, members, (side, side), out_size, interpolation, fill)
        for side, members in buckets.items()
    ]
    if len(parts) == 1:
        return parts[0]
    device = images[0].device
    out = torch.empty((len(images), 3, *out_size), dtype=torch.uint8, device=device)
    for members, part in zip(buckets.values(), parts, strict=True):
        out.index_copy_(0, _to_device(torch.tensor(members), device), part)
    return out


def _resample_bucket(
    images: Sequence[torch.Tensor],
    axes: Sequence[tuple[_Axis, _Axis]],
    members: Sequence[int],
    window: tuple[int, int],
    out_size: tuple[int, int],
    interpolation: str,
    fill: int,
) -> torch.Tensor:
    device = images[members[0]].device
    # Zeros, not empty: padding meets zero weights, and 0 * NaN garbage would be NaN.
    source = torch.zeros((len(members), 3, *window), dtype=torch.float32, device=device)
    for k, i in enumerate(members):
        row, col = axes[i]
        source[k, :, : row.stop - row.start, : col.stop - col.start] = images[i][
            :, row.start : row.stop, col.start : col.stop
        ]
    params = _to_device(
        torch.tensor(
            [[a.length, a.resized, a.offset, a.start] for i in members for a in axes[i]],
            dtype=torch.float64,
        ).view(len(members), 2, 4),
        device,
    )
    weights = [
        _weights(
            params[:, d],
            out_size[d],
            window[d],
            max(axes[i][d].taps for i in members),
            interpolation,
        )
        for d in (0, 1)
    ]
    # Horizontal pass first, each pass rounded to levels, as Pillow does.
    wide = _resample_last_axis(source, weights[1])
    out = _resample_last_axis(wide.transpose(-1, -2), weights[0]).transpose(-1, -2)
    if fill:
        outside = ~(weights[0].inside.unsqueeze(-1) & weights[1].inside.unsqueeze(-2))
        out = out.masked_fill(outside.unsqueeze(1), float(fill))
    return out.to(torch.uint8).contiguous()


def _axis(length: int, resized: int, offset: int, out: int, support: float) -> _Axis:
    """The source window [start, stop) that an axis' output pixels read, by Pillow's rule."""
    scale = length / resized
    reach = support * max(scale, 1.0)
    first, last = max(0, -offset), min(out, resized - offset) - 1
    # Pillow's bounds, in double precision with the operation order _weights uses.
    start = max(int((first + offset + 0.5) * scale - reach + 0.5), 0)
    stop = min(int((last + offset + 0.5) * scale + reach + 0.5), length)
    return _Axis(length, resized, offset, start, stop, 2 * math.ceil(reach) + 1)


@dataclass(frozen=True)
class _FixedWeights:
    """Pillow's 22-bit fixed-point weights as (n, 2 * out, window) float32 matrices.

    Rows ``[:out]`` hold ``high`` and rows ``[out:]`` ``low`` of ``weight = high * 256 + low``.
    Each half times a pixel level, summed over a row's taps, stays an integer below 2**24, so
    float32 matrix products give Pillow's integer sums exactly.
    """

    halves: torch.Tensor
    inside: torch.Tensor  # (n, out) bool: output positions inside the resized image


def _resample_last_axis(levels: torch.Tensor, weights: _FixedWeights) -> torch.Tensor:
    """(n, 3, a, window) float32 levels -> (n, 3, a, out), Pillow's rounding and clipping."""
    sums = torch.matmul(levels, weights.halves.transpose(1, 2).unsqueeze(1)).to(torch.int32)
    high, low = sums.chunk(2, dim=-1)
    # |sum| <= 255 * sum(|weights|) * 2**22 < 2**31: Pillow's own int32 accumulator bound.
    total = (high * _LOW_RANGE + low + (1 << (_PRECISION_BITS - 1))) >> _PRECISION_BITS
    return total.clamp_(0, 255).to(torch.float32)


def _weights(
    params: torch.Tensor, out: int, window: int, taps: int, interpolation: str
) -> _FixedWeights:
    """Pillow's fixed-point weights for (n, 4) [length, resized, offset, start] axes.

    Computed in float64 with Pillow's formulas and operation order, so each row has the taps
    and the rounded coefficients Pillow computes; only a row's ``taps`` are computed, then
    placed into the dense matrices.
    """
    length, resized, offset, start = (params[:, j].view(-1, 1, 1) for j in range(4))
    scale = length / resized
    stretch = scale.clamp(min=1.0)
    reach = SUPPORTS[interpolation] * stretch
    position = torch.arange(out, dtype=torch.float64, device=params.device).view(1, -1, 1)
    resized_index = position + offset
    centre = (resized_index + 0.5) * scale
    lo = torch.floor(centre - reach + 0.5).clamp(min=0)
    hi = torch.minimum(torch.floor(centre + reach + 0.5), length)
    inside = (resized_index >= 0) & (resized_index < resized)
    source = lo + torch.arange(taps, dtype=torch.float64, device=params.device)
    weights = _filter((source - centre + 0.5) / stretch, interpolation)
    weights = weights * ((source < hi) & inside)
    total = weights.sum(-1, keepdim=True)
    weights = weights / total.where(total != 0, 1.0)  # rows outside the image stay all zero
    # Pillow's normalize_coeffs_8bpc: round half away from zero to 22 fractional bits.
    fixed = torch.trunc(weights * (1 << _PRECISION_BITS) + torch.where(weights < 0, -0.5, 0.5))
    high = torch.floor(fixed / _LOW_RANGE)
    halves = torch.cat([high, fixed - high * _LOW_RANGE], dim=1).float()
    column = (source - start).clamp(0, window - 1).long()  # taps past hi weigh 0 wherever
    dense = torch.zeros((len(params), 2 * out, window), dtype=torch.float32, device=params.device)
    dense.scatter_add_(2, torch.cat([column, column], dim=1), halves)
    return _FixedWeights(halves=dense, inside=inside[..., 0])


def _filter(x: torch.Tensor, interpolation: str) -> torch.Tensor:
    x = x.abs()
    if interpolation == "bilinear":
        return (1.0 - x).clamp(min=0.0)
    a = _BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _bucket(n: int) -> int:
    # The multiple of _BUCKET above n, so a square image's exact 256 px window shares the
    # bucket of every other stored image's slightly wider one.
    return (n // _BUCKET + 1) * _BUCKET


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on ``device`` without a synchronising copy (pinned on CUDA)."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
