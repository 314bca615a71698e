"""Measuring pieces of gpu_check.py: stored images, GPU utilisation, phase times, syncs.

Everything here reads the ``clip_assets`` package found first on ``sys.path``, so the same
code measures the current tree and the baseline copy that ``gpu_check.py --compare`` runs.
Phase times are single-threaded (one batch at a time, the device synchronised after each
step); the pipeline overlaps them across worker threads, so they add up to more than a run.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils._python_dispatch import TorchDispatchMode


def _stored_image(seed: int) -> bytes:
    """One photo-like web image put through the images stage's own resize and re-encode."""
    from _harness import web_like_jpeg

    from clip_assets.download.download_settings import DownloadSettings
    from clip_assets.download.resize import process

    stored = process(web_like_jpeg(seed), DownloadSettings()).image
    if stored is None:
        raise RuntimeError(f"the images stage refused generated image {seed}")
    return stored


def write_stored_images(path: Path, n: int, distinct: int, processes: int) -> dict:
    """An images-stage parquet of ``n`` ok rows cycling through ``distinct`` stored JPEGs.

    The JPEGs are what the images asset stores by default: 256 px shortest side (keep_ratio,
    draft decode, BOX shrink), JPEG quality 95. Returns a summary of the bytes.
    """
    from PIL import Image

    from clip_assets.schemas import IMAGES_SCHEMA

    with ProcessPoolExecutor(max_workers=max(1, processes)) as pool:
        blobs = list(pool.map(_stored_image, range(distinct), chunksize=16))
    images = [blobs[i % distinct] for i in range(n)]
    sizes = set()
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as img:
            sizes.add(img.size)
    columns = {
        "uid": [f"{i:032x}" for i in range(n)],
        "url": [f"http://127.0.0.1/{i}.jpg" for i in range(n)],
        "status": ["ok"] * n,
        "image": images,
    }
    table = pa.table(
        {
            f.name: pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
            for f in IMAGES_SCHEMA
        },
        schema=IMAGES_SCHEMA,
    )
    pq.write_table(table, path)
    return {
        "rows": n,
        "distinct_images": distinct,
        "distinct_sizes": len(sizes),
        "mean_kb": round(sum(len(b) for b in blobs) / distinct / 1024, 1),
        "shortest_sides": sorted({min(s) for s in sizes}),
    }


class UtilisationSampler:
    """GPU busy percentage (NVML's utilization.gpu) sampled in a thread while in ``with``."""

    def __init__(self, device: torch.device, interval_s: float = 0.1) -> None:
        self.device = device
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda":
            self.source = self._pick_source()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {"source": self.source, "samples": 0, "mean": None, "p50": None}
        return {
            "source": self.source,
            "samples": len(self.samples),
            "mean": round(statistics.fmean(self.samples), 1),
            "p50": statistics.median(self.samples),
        }

    def _pick_source(self) -> str:
        try:
            torch.cuda.utilization(self.device)
            return "torch.cuda.utilization"
        except Exception:  # pynvml missing or NVML refused: fall back to the CLI
            return "nvidia-smi"

    def _read(self) -> float:
        if self.source == "torch.cuda.utilization":
            return float(torch.cuda.utilization(self.device))
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                f"--id={self.device.index or 0}",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return float(out.stdout.strip())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self._read())
            except Exception:  # one failed read loses one sample, not the run
                continue


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms_per_1k(fn: Callable[[], object], images: int, device: torch.device, repeats: int):
    """Median wall time of ``fn()`` (device synchronised), in ms per 1,000 images."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000 * 1000 / images, 2)


class _OpCounter(TorchDispatchMode):
    """Counts the tensor operations that do work: views and bare allocations launch nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in _ALLOCATIONS:
            self.count += 1
        return func(*args, **(kwargs or {}))


_ALLOCATIONS = {"empty", "empty_strided", "empty_like", "lift_fresh", "detach"}


def op_count(fn: Callable[[], object]) -> int:
    """Tensor operations ``fn`` runs that are not views: about its kernel launches on a GPU."""
    with _OpCounter() as counter:
        fn()
    return counter.count


@dataclass
class SyncCount:
    """Synchronising CUDA calls counted per thread name while ``count()`` is active."""

    by_thread: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def count(self):
        def record(message, category, filename, lineno, file=None, line=None):
            if "synchroniz" in str(message):
                name = threading.current_thread().name
                key = "main" if name == "MainThread" else "workers"
                self.by_thread[key] = self.by_thread.get(key, 0) + 1

        previous = warnings.showwarning
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield self
            finally:
                torch.cuda.set_sync_debug_mode("default")
                warnings.showwarning = previous


def phase_times(
    blobs: Sequence[bytes], parquet: Path, prep, path: str, device: torch.device, repeats: int
) -> tuple[dict, torch.Tensor]:
    """Read, decode, resize and transfer time for one batch of ``blobs`` on one path.

    Returns the timings and the batch's uint8 pixels on ``device`` (for ``model_times``).
    """
    from clip_assets.embed.decode import decode_on_device, open_images

    n = len(blobs)
    rows = pq.ParquetFile(parquet).metadata.num_rows
    out: dict = {"path": path, "batch_size": n}
    out["read_ms_per_1k"] = median_ms_per_1k(
        lambda: pq.read_table(parquet).column("image").combine_chunks().to_pylist(),
        rows,
        torch.device("cpu"),
        repeats,
    )
    if path == "pillow":
        out["decode_ms_per_1k"] = median_ms_per_1k(lambda: open_images(blobs), n, device, repeats)
        opened = open_images(blobs)
        out["resize_ms_per_1k"] = median_ms_per_1k(
            lambda: prep.pil_batch(opened), n, device, repeats
        )
        pixels = prep.pil_batch(opened)
        out["transfer_ms_per_1k"] = 0.0
        if device.type == "cuda":
            out["transfer_ms_per_1k"] = median_ms_per_1k(
                lambda: pixels.pin_memory().to(device, non_blocking=True), n, device, repeats
            )
        return out, pixels.to(device)
    out["decode_ms_per_1k"] = median_ms_per_1k(
        lambda: decode_on_device(blobs, device), n, device, repeats
    )
    decoded = decode_on_device(blobs, device)
    out["resize_ms_per_1k"] = median_ms_per_1k(
        lambda: prep.resize_batch(decoded), n, device, repeats
    )
    out["resize_ops_per_batch"] = op_count(lambda: prep.resize_batch(decoded))
    out["transfer_ms_per_1k"] = None  # nvjpeg copies the compressed bytes inside decode
    return out, prep.resize_batch(decoded)


def model_times(
    pixels: torch.Tensor, loaded_by_precision: dict, prep, device: torch.device, repeats: int
) -> dict:
    """Normalise + forward pass time per precision for one uint8 batch already on ``device``."""
    from clip_assets.embed.model_loading import autocast_dtype

    times = {}
    for precision, loaded in loaded_by_precision.items():
        dtype = autocast_dtype(precision)

        def forward(loaded=loaded, dtype=dtype):
            with torch.inference_mode():
                x = prep.normalize(pixels)
                if dtype is None:
                    return loaded.model.encode_image(x)
                with torch.autocast(device_type=device.type, dtype=dtype):
                    return loaded.model.encode_image(x)

        forward()  # warm-up: kernels chosen, autocast caches made
        times[precision] = median_ms_per_1k(forward, len(pixels), device, repeats)
    return times
