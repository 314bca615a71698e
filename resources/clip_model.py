"""The CLIP model as a Dagster resource: loaded once per run, on the device chosen here.

The device choice lives in this one place. ``device="auto"`` takes a GPU when torch sees one
and the CPU otherwise. On a machine with several GPUs, each run takes the first GPU that no
other run holds (an exclusive lock file per GPU), so the ``gpu`` pool's limit can be raised
to the GPU count and every run still gets a device of its own.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from clip_assets.embed.encoder import ClipEncoder
from clip_assets.embed.model_loading import ModelSpec
from clip_assets.model_defaults import DEFAULT_MODEL_NAME, DEFAULT_PRETRAINED

GPU_LOCK_DIR_ENV = "CLIP_ASSETS_GPU_LOCK_DIR"


def _lock_free_gpu(count: int, lock_dir: Path) -> tuple[int, IO[bytes]] | None:
    """Takes the first GPU whose lock no other process holds; None when all are taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = (lock_dir / f"clip-assets-gpu-{index}.lock").open("wb")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return None


class ClipModelResource(ConfigurableResource):
    """An OpenCLIP model for image and text embeddings.

    Reads: the weights of ``pretrained`` (an open_clip tag, fetched into the Hugging Face cache,
    or a local weights file). Writes: nothing. Guarantees: the model is loaded at most once per
    run process, on first use, and its identity (model, tag, weights sha256, precision, device,
    preprocessing) is available for lineage through :meth:`get_encoder`'s ``identity``.
    """

    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="open_clip model name.")
    pretrained: str | None = Field(
        default=DEFAULT_PRETRAINED,
        description="open_clip pretrained tag or a weights file; None for a model folder "
        "(model_name 'local-dir:<folder>') that carries its own weights.",
    )
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    precision: str = Field(default="auto", description="auto, fp32, bf16 or fp16.")
    batch_size: int = Field(default=256, description="Images per forward pass.")
    num_workers: int = Field(default=2, description="Decode/preprocess workers.")
    preprocess: str = Field(
        default="auto",
        description="Where images are decoded and resized: pillow (CPU threads), device "
        "(nvjpeg and batched resampling on a GPU) or auto (device on a GPU, else pillow).",
    )
    output_dtype: str = Field(default="float32", description="float32 or float16 vectors.")

    _encoders: dict[str, ClipEncoder] = PrivateAttr(default_factory=dict)
    _gpu_lock: IO[bytes] | None = PrivateAttr(default=None)
    _auto_device: str | None = PrivateAttr(default=None)

    def _resolve_device(self) -> str:
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        lock_dir = Path(os.environ.get(GPU_LOCK_DIR_ENV, tempfile.gettempdir()))
        taken = _lock_free_gpu(torch.cuda.device_count(), lock_dir)
        if taken is None:
            raise RuntimeError(
                "every GPU is held by another clip-assets run; lower the 'gpu' pool limit "
                "to the number of GPUs (dagster instance concurrency set gpu N)"
            )
        index, self._gpu_lock = taken
        return f"cuda:{index}"

    def get_encoder(self, device: str | None = None) -> ClipEncoder:
        """The loaded encoder, loading it on first call.

        ``device`` overrides the configured one: the index asset embeds a few hundred
        captions on the CPU rather than take a GPU outside the ``gpu`` pool.
        """
        wanted = device or self.device
        if wanted == "auto":
            if self._auto_device is None:
                self._auto_device = self._resolve_device()
            wanted = self._auto_device
        if wanted not in self._encoders:
            spec = ModelSpec(
                model_name=self.model_name,
                pretrained=self.pretrained,
                device=wanted,
                precision=self.precision,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                preprocess=self.preprocess,
            )
            self._encoders[wanted] = ClipEncoder.load(spec)
        return self._encoders[wanted]

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self._encoders.clear()
        self._auto_device = None
        if self._gpu_lock is not None:
            self._gpu_lock.close()
            self._gpu_lock = None
