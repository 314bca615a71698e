"""Offline CLIP weights that exercise the real loading paths: no download, real files.

Writes: (1) ``install_pretrained_standin``: a randomly initialised (seeded) open_clip model saved
as the real checkpoint file of the real Hub repo inside a Hugging Face cache layout, so that
with ``HF_HOME=<hf_home>`` and ``HF_HUB_OFFLINE=1`` the production call
``open_clip.create_model_and_transforms("ViT-B-32", pretrained="laion2b_s34b_b79k")`` loads it
unchanged. (2) ``install_tiny_model``: a small model as an open_clip ``local-dir:`` folder
(config + weights), fast enough for tests, loadable in any process. (3) ``install_in_hub_cache``:
any files as a Hub model repo's ``main`` revision in a Hugging Face cache (the stand-in and the
demo's trained model go in this way).
Guarantees: same seed, same weights; embed_dim 512 like ViT-B-32, so downstream shapes match.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from clip_assets.embed.checkpoint import hub_checkpoint, sha256_file

#: A two-layer ViT and text tower at ViT-B-32's input size, tokenizer and embed_dim.
TINY_MODEL_CFG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def install_pretrained_standin(
    hf_home: Path,
    model_name: str = "ViT-B-32",
    pretrained: str = "laion2b_s34b_b79k",
    seed: int = 0,
) -> Path:
    """Save seeded random weights for ``model_name`` as ``pretrained``'s Hub checkpoint file.

    The repo id and filename come from open_clip's pretrained registry (the first file open_clip
    asks the Hub for), laid out as huggingface_hub caches it: ``hub/models--<org>--<name>/``
    with ``blobs/<sha256>``, ``snapshots/<commit>/<filename>`` linking to the blob, and
    ``refs/main`` naming the commit. Returns the snapshot path. Raises ValueError for a tag that
    is unknown or not hosted on the Hub.
    """
    hub = hub_checkpoint(model_name, pretrained)
    if hub is None:
        raise ValueError(f"{model_name}/{pretrained} is not a Hub-hosted open_clip checkpoint")
    repo_id, filenames = hub
    filename = filenames[0]
    with tempfile.TemporaryDirectory(prefix="clip-assets-standin-") as work:
        weights = Path(work) / filename
        state = _seeded_model(model_name, seed).state_dict()
        _save_state(state, weights, safetensors=filename.endswith(".safetensors"))
        snapshot = install_in_hub_cache(hf_home, repo_id, [weights])
    return snapshot / filename


def install_in_hub_cache(hf_home: Path, repo_id: str, files: list[Path]) -> Path:
    """Place ``files`` in ``hf_home``'s Hub cache as the ``main`` revision of model ``repo_id``.

    The layout is huggingface_hub's: ``hub/models--<org>--<name>/`` with ``blobs/<sha256>``,
    ``snapshots/<commit>/<filename>`` linking to its blob, and ``refs/main`` naming the commit,
    so with ``HF_HOME=<hf_home>`` and ``HF_HUB_OFFLINE=1`` ``hf_hub_download`` answers from it.
    The commit is derived from the files' hashes: installing the same files again changes
    nothing. Each blob appears by rename and ``refs/main`` is written last, so a reader sees the
    previous revision or the new one. Returns the snapshot folder.
    """
    repo_dir = Path(hf_home) / "hub" / f"models--{repo_id.replace('/', '--')}"
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    placed: dict[str, Path] = {}
    for source in files:
        partial = blobs / f".{source.name}.partial"
        partial.unlink(missing_ok=True)
        try:
            os.link(source, partial)  # no second copy of a multi-GB checkpoint
        except OSError:
            shutil.copyfile(source, partial)
        blob = blobs / sha256_file(partial)
        partial.replace(blob)
        placed[source.name] = blob
    listing = "\n".join(f"{name} {blob.name}" for name, blob in sorted(placed.items()))
    # Any 40-hex commit works; deriving it from the content keeps reinstalls idempotent.
    commit = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, blob in placed.items():
        link = snapshot / name
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, snapshot))
    (repo_dir / "refs").mkdir(exist_ok=True)
    ref = repo_dir / "refs" / ".main.partial"
    ref.write_text(commit)
    ref.replace(repo_dir / "refs" / "main")
    return snapshot


def install_tiny_model(directory: Path, seed: int = 0) -> str:
    """Write a tiny open_clip model folder and return its model name, ``local-dir:<directory>``.

    The folder holds ``open_clip_config.json`` (model and preprocessing config, the same
    preprocessing as ViT-B-32) and ``open_clip_model.safetensors``. Use the returned name as
    ``ModelSpec(model_name=..., pretrained=None)``; it needs no registration, so it also works
    in Dagster run processes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_MODEL_CFG, "preprocess_cfg": _default_preprocess_cfg()}
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    model_name = f"local-dir:{directory}"
    model = _seeded_model(model_name, seed)
    _save_state(model.state_dict(), directory / "open_clip_model.safetensors", safetensors=True)
    return model_name


def _seeded_model(model_name: str, seed: int) -> torch.nn.Module:
    # fork_rng keeps the caller's global RNG stream untouched by the seeding.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model(model_name, pretrained=None, load_weights=False)


def _save_state(state: dict[str, torch.Tensor], path: Path, *, safetensors: bool) -> None:
    tensors = {key: value.detach().contiguous() for key, value in state.items()}
    if safetensors:
        save_file(tensors, str(path))
    else:
        torch.save(tensors, path)


def _default_preprocess_cfg() -> dict:
    return {
        "size": TINY_MODEL_CFG["vision_cfg"]["image_size"],
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
