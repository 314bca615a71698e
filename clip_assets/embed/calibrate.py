"""Whether bf16 may replace fp32 on this CPU for these weights: measured, not assumed.

Reads: the loaded model and its preprocessing; ``/proc/cpuinfo`` for native bf16 support.
Guarantees: ``bf16_agreement`` embeds a fixed, seeded set of photo-like images in fp32 and
under bf16 autocast and returns the lowest cosine between the two. Only the image tower is
measured because only it runs in bf16 on a CPU (prompts are few; the encoder keeps them fp32).
The encoder picks bf16 for ``precision="auto"`` on a CPU only when the CPU has native bf16
(AVX512-BF16 or AMX) and that cosine clears ``BF16_MIN_COSINE``, a margin above the 0.999
parity contract because real images are not the calibration images.

Why bother: on the 2-core AVX512-BF16 development CPU, ViT-B-32 under bf16 autocast took about
85 ms of CPU per image against about 118 ms in fp32 (batch 64) and agreed with fp32 at cosine
0.99995. The check costs a few seconds per load, because small bf16 batches are slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from clip_assets.embed.preprocess import Preprocessing

BF16_MIN_COSINE = 0.9995


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU computes bf16 natively; elsewhere bf16 autocast is slower than fp32."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_agreement(model: torch.nn.Module, preprocessing: Preprocessing) -> float:
    """Lowest cosine between fp32 and bf16-autocast image embeddings of the calibration set."""
    pixels = preprocessing.normalize(preprocessing.pil_batch(_calibration_images()))
    with torch.inference_mode():
        full = model.encode_image(pixels).float()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            reduced = model.encode_image(pixels).float()
    return float(torch.nn.functional.cosine_similarity(full, reduced, dim=-1).min())


def _calibration_images(count: int = 4, seed: int = 0) -> list[Image.Image]:
    # Smooth gradients, hard edges and noise at stored-image sizes: the statistics that make
    # activations large, unlike uniform noise.
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        height, width = 256, int(rng.integers(256, 400))
        yy, xx = np.mgrid[0:height, 0:width] / width
        base = np.stack(
            [np.sin(xx * rng.uniform(2, 12) + yy * rng.uniform(2, 12) + c) for c in range(3)], -1
        )
        pixels = np.clip((base * 0.5 + 0.5) * 255 + rng.normal(0, 10, base.shape), 0, 255)
        image = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            box = [x, y, x + int(rng.integers(20, 120)), y + int(rng.integers(20, 120))]
            draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        images.append(image)
    return images
