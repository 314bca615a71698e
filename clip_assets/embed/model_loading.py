"""Loading an open_clip model from a ``ModelSpec``: device, precision, weights, load counting.

Reads: the weights named by the spec (a registry tag through the Hugging Face cache or Hub, a
local file, or an open_clip ``local-dir:`` / ``hf-hub:`` model name).
Guarantees: a missing or unreadable weights file raises an error naming the path; every
successful load increments ``load_count()``, so callers can check a model loads once per run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from clip_assets.embed.calibrate import BF16_MIN_COSINE, bf16_agreement, cpu_has_native_bf16
from clip_assets.embed.checkpoint import is_weights_path, resolve_checkpoint, sha256_file
from clip_assets.embed.preprocess import Preprocessing
from clip_assets.model_defaults import DEFAULT_MODEL_NAME, DEFAULT_PRETRAINED

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PREPROCESSING = ("auto", "pillow", "device")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class WeightsError(RuntimeError):
    """The weights named by a ModelSpec could not be found or loaded."""


@dataclass(frozen=True)
class ModelSpec:
    """What to load and where to run it; hashable so a resource can cache one encoder per spec.

    ``pretrained`` is an open_clip registry tag or a local weights file (.safetensors, .bin,
    .pt, .pth). ``device``: auto | cpu | cuda | cuda:N (auto = cuda when available, else cpu).
    ``precision``: auto | fp32 | bf16 | fp16; bf16/fp16 run under autocast with fp32 weights.
    auto = bf16 (fp16 where unsupported) on GPU; on CPU, bf16 where the CPU has native bf16
    and these weights measurably agree with fp32 (see ``resolve_precision``), else fp32.
    ``num_workers``: threads decoding and resizing upcoming batches while the model runs
    (each prepares a whole batch: the Pillow path feeding a GPU wants about one per core).
    ``preprocess``: where image bytes are decoded and resized. pillow: in the worker threads
    with open_clip's own Pillow transforms (pixel-exact), then copied to the device; device:
    on the model's device (on a GPU, nvjpeg and batched resampling; on a CPU, torchvision's
    decoder and the same resampling); auto = device on a GPU, pillow on a CPU.
    """

    model_name: str = DEFAULT_MODEL_NAME
    pretrained: str | None = DEFAULT_PRETRAINED
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 256
    num_workers: int = 2
    preprocess: str = "auto"

    def __post_init__(self) -> None:
        if self.device.split(":")[0] not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES} or cuda:N, not {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, not {self.preprocess!r}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("batch_size must be >= 1 and num_workers >= 0")


@dataclass(frozen=True)
class LoadedModel:
    """An open_clip model in eval mode on its device, with what lineage needs to know about it."""

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    preprocess_cfg: dict
    device: torch.device
    precision: str
    bf16_cosine: float | None  # measured fp32-vs-bf16 agreement, when auto precision measured it
    weights_path: Path | None
    weights_sha256: str | None


_loads = 0
_loads_lock = threading.Lock()


def load_count() -> int:
    """How many models this process has loaded (successful ``load_model`` calls)."""
    return _loads


def resolve_device(device: str) -> torch.device:
    """The torch device for a spec's ``device``; asks for cuda only where it exists."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
        return torch.device("cuda", index)
    return resolved


def resolve_precision(
    precision: str, device: torch.device, bf16_cosine: Callable[[], float]
) -> tuple[str, float | None]:
    """fp32 | bf16 | fp16 for a spec's ``precision`` on ``device``, and the cosine measured.

    auto on a GPU: bf16 autocast (fp16 where bf16 is unsupported). auto on a CPU: bf16 only
    where the CPU has native bf16 and ``bf16_cosine()`` (fp32 vs bf16 agreement of these
    weights, see calibrate.py) reaches BF16_MIN_COSINE; otherwise fp32.
    """
    if precision != "auto":
        return precision, None
    if device.type == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), None
    if not cpu_has_native_bf16():
        return "fp32", None
    cosine = bf16_cosine()
    return ("bf16" if cosine >= BF16_MIN_COSINE else "fp32"), cosine


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype for a resolved precision, None for plain fp32."""
    return _AUTOCAST_DTYPES.get(precision)


def load_model(spec: ModelSpec) -> LoadedModel:
    """Build the spec's model with its weights via open_clip, unchanged from its own API.

    Raises ``FileNotFoundError`` naming the path for a missing weights file and
    ``WeightsError`` naming the file, or the tag and model, when weights cannot be loaded.
    """
    global _loads
    device = resolve_device(spec.device)
    pretrained = spec.pretrained or None
    if pretrained and is_weights_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"CLIP weights file not found: {path}")
        pretrained = str(path)
    try:
        # Weights stay fp32; reduced precision comes from autocast at inference, which keeps
        # layer norms, softmax and reductions in fp32.
        model = open_clip.create_model(
            spec.model_name, pretrained=pretrained, precision="fp32", device=device
        )
    except Exception as err:
        source = (
            f"file {pretrained}"
            if pretrained and is_weights_path(pretrained)
            else (f"pretrained={pretrained!r}")
        )
        raise WeightsError(
            f"could not load CLIP model {spec.model_name!r} with {source}: {err}"
        ) from err
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(spec.model_name)
    preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
    precision, bf16_cosine = resolve_precision(
        spec.precision,
        device,
        lambda: bf16_agreement(model, Preprocessing.from_open_clip(preprocess_cfg)),
    )
    weights_path = resolve_checkpoint(spec.model_name, pretrained)
    with _loads_lock:
        _loads += 1
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        preprocess_cfg=preprocess_cfg,
        device=device,
        precision=precision,
        bf16_cosine=bf16_cosine,
        weights_path=weights_path,
        weights_sha256=sha256_file(weights_path) if weights_path else None,
    )
