"""What the code location reads from the environment: the shared resources.

``CLIP_ASSETS_ROOT`` (storage root, a local folder or ``gs://bucket/prefix``; default
``data``), ``HF_TOKEN`` (read at run time through ``EnvVar``, never stored in config),
``CLIP_ASSETS_RELEASE_REPO`` (publish target), ``CLIP_ASSETS_MODEL`` /
``CLIP_ASSETS_PRETRAINED`` (a tag, a weights file, or ``none``) / ``CLIP_ASSETS_DEVICE``,
``CLIP_ASSETS_DOWNLOAD_WORKERS`` (download processes; unset, one per core; a Kubernetes step
pod sets it to its CPU request); read elsewhere: ``CLIP_ASSETS_CACHE``
(``clip_assets.paths.cache_dir``) and ``CLIP_ASSETS_DATASETS`` (the dataset registry,
``clip_assets.registry``).
"""

from __future__ import annotations

import os

from dagster import EnvVar

from clip_assets.deploy.step_sizes import download_workers_from_env
from clip_assets.model_defaults import DEFAULT_MODEL_NAME, DEFAULT_PRETRAINED
from clip_assets.paths import storage_root
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource
from resources.hub import HubResource
from resources.storage import storage_for_root

TOKEN_ENV = "HF_TOKEN"


def _pretrained(value: str) -> str | None:
    """``none`` names no weights: a ``local-dir:`` model folder carries its own."""
    return None if value.lower() == "none" else value


def default_resources() -> dict[str, object]:
    """Resources configured from the environment (see the module docstring)."""
    return {
        "storage": storage_for_root(storage_root()),
        "hub": HubResource(
            token=EnvVar(TOKEN_ENV) if TOKEN_ENV in os.environ else None,
            release_repo=os.environ.get("CLIP_ASSETS_RELEASE_REPO"),
        ),
        "clip_model": ClipModelResource(
            model_name=os.environ.get("CLIP_ASSETS_MODEL", DEFAULT_MODEL_NAME),
            pretrained=_pretrained(os.environ.get("CLIP_ASSETS_PRETRAINED", DEFAULT_PRETRAINED)),
            device=os.environ.get("CLIP_ASSETS_DEVICE", "auto"),
        ),
        "downloader": DownloaderResource(workers=download_workers_from_env()),
    }
