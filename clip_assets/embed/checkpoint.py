"""Which weights file open_clip loads for a model, and its SHA-256.

Reads: open_clip's pretrained registry and the local Hugging Face cache (never the network).
Guarantees: ``resolve_checkpoint`` names the file open_clip itself picks for the same
``(model_name, pretrained)``, so the hash recorded in lineage is the hash of the weights used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import open_clip
from huggingface_hub import try_to_load_from_cache
from open_clip.constants import HF_WEIGHTS_NAME
from open_clip.factory import _find_checkpoint_in_dir, parse_model_name
from open_clip.pretrained import _get_safe_alternatives, download_pretrained

#: Suffixes that mark ``pretrained`` as a local weights file rather than a registry tag.
WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def is_weights_path(pretrained: str) -> bool:
    """True when ``pretrained`` names a local file: a weights suffix or a path separator.

    Registry tags are bare identifiers (``laion2b_s34b_b79k``), so neither can appear in one.
    """
    return pretrained.endswith(WEIGHTS_SUFFIXES) or os.sep in pretrained or "/" in pretrained


def hub_checkpoint(model_name: str, tag: str) -> tuple[str, list[str]] | None:
    """Hub repo id and candidate weight filenames, in open_clip's order, for a registry tag.

    Returns None when the tag is unknown or hosted at a plain URL rather than the Hub.
    The order mirrors ``open_clip.pretrained.download_pretrained_from_hf``: the safetensors
    twin of the registered file first, then the registered file itself.
    """
    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub")
    if not hf_hub:
        return None
    # open_clip's convention: "org/repo/file.bin", or "org/repo/" for the default filename.
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    return repo_id, [*_get_safe_alternatives(filename), filename]


def resolve_checkpoint(model_name: str, pretrained: str | None) -> Path | None:
    """The weights file open_clip loaded for ``(model_name, pretrained)``, or None for none.

    Call it after open_clip has loaded the model: a Hub-hosted tag is then in the local cache,
    and this only reads that cache (``refs/main`` -> snapshot), with no second download that
    could see a newer revision than the one loaded.
    """
    schema, identifier = parse_model_name(model_name)
    if schema == "local-dir":
        found = _find_checkpoint_in_dir(Path(identifier))
        return Path(found) if found else None
    if schema == "hf-hub":
        return _cached_file(identifier, [*_get_safe_alternatives(HF_WEIGHTS_NAME), HF_WEIGHTS_NAME])
    if not pretrained:
        return None
    if is_weights_path(pretrained):
        return Path(pretrained)
    hub = hub_checkpoint(model_name, pretrained)
    if hub is not None:
        cached = _cached_file(*hub)
        if cached is not None:
            return cached
    # URL-hosted tags (the OpenAI releases) live in open_clip's own cache; asking open_clip
    # again returns that cached file without downloading.
    found = download_pretrained(open_clip.get_pretrained_cfg(model_name, pretrained))
    return Path(found) if found else None


def _cached_file(repo_id: str, filenames: list[str]) -> Path | None:
    for filename in filenames:
        cached = try_to_load_from_cache(repo_id, filename)
        # try_to_load_from_cache returns a sentinel (not a str) for "known not to exist".
        if isinstance(cached, str):
            return Path(cached)
    return None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so a multi-GB checkpoint never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
