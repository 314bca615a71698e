"""Listing a dataset's source parquet files and fetching one to local disk.

Three kinds of source: a Hub dataset repo (``hf://datasets/<owner>/<repo>``, read with
huggingface_hub at a pinned commit), a local folder, and a ``gs://bucket/prefix``. Each file
is described by a :class:`SourceFile` whose ``version`` changes whenever its bytes do (LFS
sha256 on the Hub, size + mtime locally, generation on GCS).
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from dagster_gcp import GCSResource
from google.cloud import storage as gcs
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download

from clip_assets.registry import DatasetSpec


@dataclass(frozen=True)
class HubAccess:
    """How to reach the Hugging Face Hub: a token (never logged) and an endpoint (None = the
    public Hub, or ``HF_ENDPOINT``)."""

    token: str | None = None
    endpoint: str | None = None

    def __repr__(self) -> str:
        return f"HubAccess(token={'***' if self.token else None}, endpoint={self.endpoint!r})"


NO_HUB_ACCESS = HubAccess()


@dataclass(frozen=True)
class SourceFile:
    """One parquet file of a source, at one version."""

    path: str  # relative to the source root, POSIX separators
    version: str  # changes when the file's bytes change
    revision: str | None  # Hub commit the file was listed at; None for other sources
    size: int


def _matches(path: str, pattern: str) -> bool:
    # "**/*.parquet" should also match files at the top level.
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/"))


def _gcs_location(source: str) -> tuple[str, str]:
    bucket, _, prefix = source.removeprefix("gs://").partition("/")
    return bucket, prefix.strip("/")


def _gcs_blob(spec: DatasetSpec, file: SourceFile) -> gcs.Blob:
    """The GCS object holding ``file`` of a ``gs://`` source."""
    bucket_name, prefix = _gcs_location(spec.source)
    name = f"{prefix}/{file.path}" if prefix else file.path
    return GCSResource().get_client().bucket(bucket_name).blob(name)


def list_source_files(spec: DatasetSpec, hub: HubAccess = NO_HUB_ACCESS) -> list[SourceFile]:
    """The dataset's parquet files in source order (sorted by relative path)."""
    repo = spec.hub_repo
    if repo is not None:
        api = HfApi(token=hub.token, endpoint=hub.endpoint)
        commit = api.dataset_info(repo, revision=spec.revision).sha
        entries = api.list_repo_tree(repo, repo_type="dataset", revision=commit, recursive=True)
        files = [
            SourceFile(
                path=entry.path,
                version=entry.lfs.sha256 if entry.lfs else entry.blob_id,
                revision=commit,
                size=entry.size,
            )
            for entry in entries
            if hasattr(entry, "size") and _matches(entry.path, spec.file_glob)
        ]
    elif spec.source.startswith("gs://"):
        bucket_name, prefix = _gcs_location(spec.source)
        client = GCSResource().get_client()
        files = []
        for blob in client.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else None):
            rel = blob.name[len(prefix) + 1 :] if prefix else blob.name
            if _matches(rel, spec.file_glob):
                files.append(SourceFile(rel, str(blob.generation), None, blob.size))
    else:
        root = Path(spec.source).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{spec.name}: source folder {root} does not exist")
        files = []
        for path in root.rglob("*"):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and _matches(rel, spec.file_glob):
                stat = path.stat()
                files.append(
                    SourceFile(rel, f"{stat.st_size}-{stat.st_mtime_ns}", None, stat.st_size)
                )
    return sorted(files, key=lambda f: f.path)


def count_rows(spec: DatasetSpec, file: SourceFile, hub: HubAccess = NO_HUB_ACCESS) -> int:
    """Rows in ``file``, read from the parquet footer only (a few range requests remotely)."""
    repo = spec.hub_repo
    if repo is not None:
        fs = HfFileSystem(token=hub.token, endpoint=hub.endpoint)
        with fs.open(f"datasets/{repo}@{file.revision}/{file.path}", "rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    if spec.source.startswith("gs://"):
        with _gcs_blob(spec, file).open("rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows
    return pq.ParquetFile(Path(spec.source).expanduser() / file.path).metadata.num_rows


def fetch_source_file(
    spec: DatasetSpec, file: SourceFile, cache_dir: Path, hub: HubAccess = NO_HUB_ACCESS
) -> Path:
    """A local path holding ``file`` at its listed version (downloaded once, then cached)."""
    repo = spec.hub_repo
    if repo is not None:
        return Path(
            hf_hub_download(
                repo,
                file.path,
                repo_type="dataset",
                revision=file.revision,
                token=hub.token,
                endpoint=hub.endpoint,
            )
        )
    if spec.source.startswith("gs://"):
        key = hashlib.sha256(f"{spec.source}/{file.path}@{file.version}".encode()).hexdigest()
        local = cache_dir / "gcs" / key[:2] / f"{key}.parquet"
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_suffix(".part")
            _gcs_blob(spec, file).download_to_filename(str(partial))
            partial.replace(local)
        return local
    return Path(spec.source).expanduser() / file.path
