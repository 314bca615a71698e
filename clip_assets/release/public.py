"""What a published release may say about where it came from: public identities, never paths.

Reads a dataset's source as the registry names it and a model identity as the embeddings stage
records it. Returns what is safe and meaningful to publish: a Hub repo as ``org/name``, a bucket
as its ``gs://`` URL, a local folder by its name only; a model with any local path reduced to
the file or folder name (the weights' sha256 identifies them).
Writes nothing.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

_HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")
_HUB_URL = "hf://datasets/"
_LOCAL_DIR = "local-dir:"
#: Identity fields that hold a path on the machine that embedded.
_LOCAL_FIELDS = ("weights_file",)


def is_hub_repo(source: str | None) -> bool:
    """``org/name``, as opposed to a local folder or a bucket URL."""
    return bool(source and _HUB_REPO.fullmatch(source))


def public_source(source: str | None, dataset: str) -> str:
    """The source's public name: ``org/name`` for the Hub (``hf://datasets/...`` too), the
    ``gs://`` URL for a bucket, only the folder's name for a local folder, else ``dataset``."""
    if not source:
        return dataset
    if source.startswith(_HUB_URL):
        return source.removeprefix(_HUB_URL).strip("/")
    if source.startswith("gs://") or is_hub_repo(source):
        return source
    return PurePath(source.rstrip("/\\")).name or dataset


def model_name(identity: dict[str, Any]) -> str | None:
    """The open_clip model name of an identity: the embeddings stage records ``model``,
    ``model.json`` files may say ``model_name``."""
    return identity.get("model_name") or identity.get("model")


def public_model(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` without the local weights path, other local paths cut to their last part."""
    public = {k: v for k, v in identity.items() if k not in _LOCAL_FIELDS}
    for key in ("model", "model_name"):
        name = public.get(key)
        if isinstance(name, str) and name.startswith(_LOCAL_DIR):
            public[key] = _LOCAL_DIR + PurePath(name.removeprefix(_LOCAL_DIR).rstrip("/")).name
    pretrained = public.get("pretrained")
    if isinstance(pretrained, str) and ("/" in pretrained or "\\" in pretrained):
        public["pretrained"] = PurePath(pretrained).name
    return public
