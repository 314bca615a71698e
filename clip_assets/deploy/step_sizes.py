"""How big each step's pod is on Kubernetes, from what the stages were measured to use.

Every stage gets one ``dagster-k8s/config`` op tag, in dagster-k8s's own format
(``container_config`` / ``pod_spec_config``), which ``k8s_job_executor`` merges into the pod it
launches for that step; other executors ignore the tag. Only ``embeddings`` asks for a GPU.

Where the figures come from (benchmarks/README.md, measured on the dev machine):

- images: 567 MB peak PSS for one 50,000-row partition with 2 download worker processes, at
  ~550 img/s; memory is bounded by parquet row groups, not by the partition. The partition is
  written to a local file and uploaded whole, so local disk grows with the partition: stored
  images average 44.5 KB (256 px shortest side, JPEG q95).
- embeddings: ~2.5 GB peak PSS for ViT-B-32 with torch on 1,000 images; the step reads one
  partition's images table whole, so memory adds twice its bytes (the download and the table).
- faiss_index: autofaiss is told how much memory the build may use
  (``IndexSettings.current_memory_available``); the pod gets that much and room for the rest of
  the process (pyarrow batches, the text encoder for the recall queries).

Reads: nothing. Writes: nothing. Guarantees: requests never exceed limits; memory request and
limit are equal (a step is never evicted for using what it was given); CPU is requested, not
capped, so a step may use idle cores; thread and worker counts are pinned to the CPU request,
since inside a container the process sees every core of the node.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autofaiss.utils.cast import cast_memory_to_bytes
from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY

from clip_assets.index.index_settings import IndexSettings

GIB = 2**30
#: Mean stored image (bench_embed.py: 1,000 photo-like JPEGs as the images stage stores them).
STORED_IMAGE_BYTES = 44_500
#: Download worker processes of the images step: the measured configuration (2 workers).
IMAGES_WORKERS = 2
#: Read by the code location's downloader settings: without it a pod would start one worker
#: per core of the node, whatever its CPU request.
DOWNLOAD_WORKERS_ENV = "CLIP_ASSETS_DOWNLOAD_WORKERS"
#: GKE's node label for the accelerator type, and the taint GKE puts on GPU nodes.
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_ACCELERATOR = "nvidia-l4"
ACCELERATOR_ENV = "CLIP_ASSETS_GKE_ACCELERATOR"
#: Checks of the whole-dataset assets load the index: it is at most this large.
INDEX_BUDGET = IndexSettings().max_index_memory_usage


@dataclass(frozen=True)
class StepSize:
    """What one step's container asks for: CPUs, memory (GiB), local disk (GiB), GPUs, and
    environment variables that keep the step within them."""

    cpu: int
    memory_gib: int
    disk_gib: int
    gpus: int = 0
    env: dict[str, str] = field(default_factory=dict)


def _gib(n_bytes: float) -> int:
    return math.ceil(n_bytes / GIB)


def partition_image_bytes(rows_per_partition: int) -> int:
    """Bytes of one partition's stored images, every row ``ok`` (the most it can be)."""
    return rows_per_partition * STORED_IMAGE_BYTES


def step_sizes(rows_per_partition: int) -> dict[str, StepSize]:
    """The size of every stage's step, and of the whole-dataset checks (``checks``)."""
    images = partition_image_bytes(rows_per_partition)
    build_memory = _gib(cast_memory_to_bytes(IndexSettings().current_memory_available))
    index_gib = _gib(cast_memory_to_bytes(INDEX_BUDGET))
    return {
        "metadata": StepSize(cpu=1, memory_gib=2, disk_gib=2),
        # 2 GiB: 3.5x the 567 MB measured, since the kernel charges the page cache of the file
        # being written and uploaded to the pod. Disk: the new file and, with
        # retry_failed_only, the previous one.
        "images": StepSize(
            cpu=IMAGES_WORKERS,
            memory_gib=2,
            disk_gib=_gib(2 * images) + 1,
            env={DOWNLOAD_WORKERS_ENV: str(IMAGES_WORKERS)},
        ),
        # 3 GiB for model, torch and the CUDA runtime; disk for the weights in the HF cache.
        "embeddings": StepSize(cpu=4, memory_gib=3 + _gib(2 * images), disk_gib=2, gpus=1),
        # Every embeddings partition is downloaded to local disk, then the old and new index:
        # DataComp small's 9.25M float32 vectors are ~19 GB. Larger datasets raise it through
        # the executor's per_step_k8s_config (docs/deploy.md). 6 CPUs: the pod must fit an
        # 8-vCPU high-memory node after GKE's reservations and its node daemons.
        "faiss_index": StepSize(cpu=6, memory_gib=build_memory + 8, disk_gib=64),
        "id_mapping": StepSize(cpu=1, memory_gib=4, disk_gib=2),
        "hf_release": StepSize(cpu=2, memory_gib=8, disk_gib=64),
        "checks": StepSize(cpu=2, memory_gib=index_gib + 4, disk_gib=2 * index_gib),
    }


def k8s_config(size: StepSize, accelerator: str = DEFAULT_ACCELERATOR) -> dict[str, Any]:
    """The ``dagster-k8s/config`` value for a step of this size."""
    requests = {
        "cpu": str(size.cpu),
        "memory": f"{size.memory_gib}Gi",
        "ephemeral-storage": f"{size.disk_gib}Gi",
    }
    limits = {"memory": requests["memory"], "ephemeral-storage": requests["ephemeral-storage"]}
    # torch and faiss start one OpenMP thread per core of the node unless told otherwise.
    env = {"OMP_NUM_THREADS": str(size.cpu), **size.env}
    config: dict[str, Any] = {
        "container_config": {
            "resources": {"requests": requests, "limits": limits},
            "env": [{"name": name, "value": value} for name, value in sorted(env.items())],
        }
    }
    if size.gpus:
        # Extended resources are set as limits; a request, when given, must equal the limit.
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(size.gpus)
        config["pod_spec_config"] = {
            "node_selector": {ACCELERATOR_LABEL: accelerator},
            "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        }
    return config


def accelerator_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """The GPU type of the cluster's GPU node pool: ``CLIP_ASSETS_GKE_ACCELERATOR``."""
    return environ.get(ACCELERATOR_ENV, "").strip() or DEFAULT_ACCELERATOR


def download_workers_from_env(environ: Mapping[str, str] = os.environ) -> int | None:
    """Download worker processes: ``CLIP_ASSETS_DOWNLOAD_WORKERS``, None (one per core) unset."""
    value = environ.get(DOWNLOAD_WORKERS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{DOWNLOAD_WORKERS_ENV} is a number of processes, not {value!r}")
    return int(value)


def k8s_op_tags(
    step: str, rows_per_partition: int, accelerator: str = DEFAULT_ACCELERATOR
) -> dict[str, str]:
    """The op tags that size ``step`` (a stage name, or ``checks``) on Kubernetes."""
    sizes = step_sizes(rows_per_partition)
    if step not in sizes:
        raise KeyError(f"no pod size for step {step!r}; sized: {', '.join(sizes)}")
    return {USER_DEFINED_K8S_CONFIG_KEY: json.dumps(k8s_config(sizes[step], accelerator))}
