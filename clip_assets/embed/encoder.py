"""``ClipEncoder``: one loaded CLIP model that embeds image bytes, PIL images and texts.

Reads: encoded images (JPEG, PNG, WebP, ...) or prompts.
Writes: (N, dim) float32 numpy arrays, each row L2-normalised, in input order.
Guarantees: worker threads decode and resize the next batches while the model runs the
current one. With ``preprocess="pillow"`` (the default on a CPU) images go through open_clip's
own Pillow transforms (pixels identical to its ``preprocess``) and travel to a GPU from pinned
memory; with ``"device"`` (the default on a GPU) JPEGs decode on the device with nvjpeg and are
resized there with Pillow's weights in one batched pass, each worker on its own CUDA stream.
Normalisation runs once per batch on the device; inference runs under
``torch.inference_mode`` and the spec's precision, and nothing in the loop waits for the GPU
until the embeddings are copied back at the end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import open_clip
import torch
from PIL import Image
from torch.nn import functional as F

from clip_assets.embed.decode import check_device_decoder, decode_on_device, open_images
from clip_assets.embed.model_loading import LoadedModel, ModelSpec, autocast_dtype, load_model
from clip_assets.embed.prefetch import prefetch
from clip_assets.embed.preprocess import Preprocessing

T = TypeVar("T")


class ClipEncoder:
    """A CLIP model ready to embed; build it with ``ClipEncoder.load(spec)``."""

    def __init__(self, loaded: LoadedModel, spec: ModelSpec) -> None:
        self._loaded = loaded
        self._spec = spec
        self._model = loaded.model
        self._torch_device = loaded.device
        self._preprocessing = Preprocessing.from_open_clip(loaded.preprocess_cfg)
        self._autocast_dtype = autocast_dtype(loaded.precision)
        # On a CPU, reduced precision was measured for the image tower only (calibrate.py), and
        # prompts are too few for speed to matter there: they stay fp32.
        self._text_autocast_dtype = self._autocast_dtype if loaded.device.type == "cuda" else None
        self._thread_streams = threading.local()
        self._on_device = spec.preprocess == "device" or (
            spec.preprocess == "auto" and loaded.device.type == "cuda"
        )
        if self._on_device and loaded.device.type == "cuda":
            check_device_decoder(loaded.device)
        self.dim: int = int(self._model.visual.output_dim)
        self.device: str = str(loaded.device)
        self.identity: dict = {
            "model": spec.model_name,
            "pretrained": spec.pretrained,
            "weights_file": str(loaded.weights_path) if loaded.weights_path else None,
            "weights_sha256": loaded.weights_sha256,
            "precision": loaded.precision,
            "bf16_vs_fp32_min_cosine": loaded.bf16_cosine,
            "device": self.device,
            "dim": self.dim,
            "preprocessing": {
                **self._preprocessing.describe(),
                # Which of the two equivalent paths runs (preprocess.py): Pillow is pixel-exact
                # with open_clip; the GPU path agrees within rounding.
                "implementation": _implementation(self._on_device, loaded.device),
            },
            "open_clip_version": open_clip.__version__,
        }

    @classmethod
    def load(cls, spec: ModelSpec | None = None) -> ClipEncoder:
        """Load the spec's model (default ``ModelSpec()``); errors name the weights path."""
        spec = spec or ModelSpec()
        return cls(load_model(spec), spec)

    def encode_images(
        self, images: Sequence[bytes], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Encoded image bytes -> (N, dim) float32, L2-normalised; raises ImageDecodeError.
        ``on_batch(done)`` is told how many images are embedded after each batch."""
        return self._encode_pixel_batches(self._prepare_bytes, images, on_batch)

    def encode_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images (any mode, converted to RGB) -> (N, dim) float32, L2-normalised."""
        return self._encode_pixel_batches(self._prepare_pil, images)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts -> (N, dim) float32, L2-normalised, tokenised as the model was trained."""
        out = []
        with torch.inference_mode():
            for chunk in _chunks(texts, self._spec.batch_size):
                tokens = self._loaded.tokenizer(list(chunk)).to(self._torch_device)
                with self._autocast(self._text_autocast_dtype):
                    features = self._model.encode_text(tokens)
                out.append(F.normalize(features.float(), dim=-1))
        return self._to_numpy(out)

    def _encode_pixel_batches(
        self,
        prepare: Callable[[Sequence[T]], torch.Tensor],
        items: Sequence[T],
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        out = []
        done = 0
        batches = prefetch(prepare, _chunks(items, self._spec.batch_size), self._spec.num_workers)
        with torch.inference_mode():
            for pixels in batches:
                if pixels.is_cuda:
                    # Made on a worker's stream: keep the allocator from recycling its memory
                    # for that stream until the model's stream has finished reading it.
                    pixels.record_stream(torch.cuda.current_stream(self._torch_device))
                x = self._preprocessing.normalize(pixels.to(self._torch_device, non_blocking=True))
                with self._autocast(self._autocast_dtype):
                    features = self._model.encode_image(x)
                out.append(F.normalize(features.float(), dim=-1))
                done += int(pixels.shape[0])  # a shape, no device sync
                if on_batch is not None:
                    on_batch(done)
        return self._to_numpy(out)

    def _prepare_bytes(self, chunk: Sequence[bytes]) -> torch.Tensor:
        # Runs in a prefetch thread.
        if not self._on_device:
            return self._pin(self._preprocessing.pil_batch(open_images(chunk)))
        if self._torch_device.type != "cuda":
            return self._preprocessing.resize_batch(decode_on_device(chunk, self._torch_device))
        stream = self._worker_stream()
        with torch.cuda.stream(stream):
            # torchvision's nvjpeg decoder allocates on the current stream but writes from its
            # own without waiting on it (pytorch/vision#9606), so nothing queued on this stream
            # may still be using memory it could be handed: drain it first.
            stream.synchronize()
            pixels = self._preprocessing.resize_batch(decode_on_device(chunk, self._torch_device))
            stream.synchronize()  # the batch is complete before the model's stream reads it
        return pixels

    def _worker_stream(self) -> torch.cuda.Stream:
        # One stream per worker thread: no other thread queues work on it, so draining it
        # makes its memory pool safe for the decoder.
        stream = getattr(self._thread_streams, "stream", None)
        if stream is None:
            stream = torch.cuda.Stream(device=self._torch_device)
            self._thread_streams.stream = stream
        return stream

    def _prepare_pil(self, chunk: Sequence[Image.Image]) -> torch.Tensor:
        return self._pin(self._preprocessing.pil_batch(chunk))

    def _pin(self, pixels: torch.Tensor) -> torch.Tensor:
        # Pinned host memory lets the copy to the GPU run asynchronously (non_blocking above).
        if self._torch_device.type == "cuda" and pixels.device.type == "cpu":
            return pixels.pin_memory()
        return pixels

    def _autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._torch_device.type, dtype=dtype)

    def _to_numpy(self, parts: list[torch.Tensor]) -> np.ndarray:
        if not parts:
            return np.empty((0, self.dim), dtype=np.float32)
        return torch.cat(parts).cpu().numpy().astype(np.float32, copy=False)


def _implementation(on_device: bool, device: torch.device) -> str:
    if not on_device:
        return "Pillow, open_clip's own transforms"
    decoder = "nvjpeg" if device.type == "cuda" else "torchvision decode"
    return f"{decoder} + Pillow-weight batched resize on {device.type}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
