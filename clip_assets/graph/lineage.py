"""Code versions that carry the settings a stage's output depends on, so the UI marks stale
exactly what a settings change makes stale.

Dagster marks an asset stale when its code version differs from the one its last
materialization recorded, and a downstream asset stale when an input's data version changed
since it was made. So:

- ``images`` carries the download output settings (``DownloadSettings.output_settings``: size,
  resize mode, format, quality, hash policy, opt-out...; not concurrency or timeouts, which
  change how fast rows arrive, not what they hold);
- ``embeddings`` carries the declared model (name, weights tag or file, precision, output
  dtype; not the device or batch size);
- ``faiss_index`` carries both: Dagster stops comparing a whole-dataset asset's partitioned
  inputs past 100 partitions, so at DataComp's scale only its own code version can say that
  the images or the model changed under it. ``id_mapping`` and ``hf_release`` follow the
  index's data version.

A stage whose resource is not given keeps the package version alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from clip_assets import __version__
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource

#: The model settings that decide the vectors (the device and batch size do not).
MODEL_FIELDS = ("model_name", "pretrained", "precision", "output_dtype")


def _digest(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


def stage_code_versions(resources: Mapping[str, object]) -> dict[str, str]:
    """Stage -> code version for the stages whose output the resources decide."""
    parts: dict[str, str] = {}
    downloader = resources.get("downloader")
    if isinstance(downloader, DownloaderResource):
        parts["images"] = f"download-{_digest(downloader.settings_for().output_settings())}"
    clip_model = resources.get("clip_model")
    if isinstance(clip_model, ClipModelResource):
        declared = {name: getattr(clip_model, name) for name in MODEL_FIELDS}
        parts["embeddings"] = f"model-{_digest(declared)}"
    versions = {stage: f"{__version__}+{part}" for stage, part in parts.items()}
    if parts:
        versions["faiss_index"] = f"{__version__}+" + "+".join(parts.values())
    return versions
