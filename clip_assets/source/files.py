"""Listing a dataset's source parquet files, reading their footers, fetching one to local disk.

Three kinds of source: a Hub dataset repo (``hf://datasets/<owner>/<repo>``, read with
huggingface_hub at a pinned commit), a local folder, and a ``gs://bucket/prefix``. Each file
is described by a :class:`SourceFile` whose ``version`` names its bytes, never its mtime: the
LFS sha256 (or git blob id) on the Hub, the MD5 GCS keeps of an object's bytes (its
generation for a composite object, which has none), and the SHA-256 of a local file. A touch,
a copy or a re-upload of the same bytes keeps the version, so no partition is redone for it.

Hashing a local file costs one read, so it is done only when the file's ``fingerprint``
(size, mtime, ctime, inode) differs from the one its known version was computed at; an
unchanged folder costs one ``stat`` per file. Hub failures are raised as :class:`SourceError`
with every form of the token scrubbed (``clip_assets.redaction``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from google.cloud import storage as gcs
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download

from clip_assets.atomic_files import replacing
from clip_assets.redaction import normalise_secret, protect_logs, scrubbed_errors
from clip_assets.registry import DatasetSpec

_CHUNK = 1 << 20


@dataclass(frozen=True)
class HubAccess:
    """How to reach the Hugging Face Hub: a token (never logged) and an endpoint (None = the
    public Hub, or ``HF_ENDPOINT``)."""

    token: str | None = None
    endpoint: str | None = None

    def __post_init__(self) -> None:
        # A token read from a secret file ends in a newline: an illegal header value whose
        # error would quote it.
        object.__setattr__(self, "token", normalise_secret(self.token))
        protect_logs(self.token)

    def __repr__(self) -> str:
        return f"HubAccess(token={'***' if self.token else None}, endpoint={self.endpoint!r})"


NO_HUB_ACCESS = HubAccess()


class SourceError(RuntimeError):
    """A source or one of its files could not be read; the message names it (no token)."""


@dataclass(frozen=True)
class SourceFile:
    """One parquet file of a source, at one version."""

    path: str  # relative to the source root, POSIX separators
    version: str  # names the file's bytes: equal versions, equal bytes
    revision: str | None  # Hub commit the file was listed at; None for other sources
    size: int
    # What ``version`` was computed at, cheap to read again: size, mtime, ctime and inode of a
    # local file, the generation of a GCS object; None on the Hub, whose listing carries the
    # content hash.
    fingerprint: str | None = None


#: What a listing may reuse: path -> (fingerprint, version) from an earlier look.
KnownVersions = Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class SourceListing:
    """The files a look at the source found, and the files it could not read (path, why)."""

    files: list[SourceFile]
    unreadable: list[tuple[str, str]]


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
    return gcs.Client().bucket(bucket_name).blob(name)


def source_uri(spec: DatasetSpec, path: str) -> str:
    """Where a person finds the file ``path`` of the source."""
    if spec.source.startswith(("hf://", "gs://")):
        return f"{spec.source.rstrip('/')}/{path}"
    return str(Path(spec.source).expanduser() / path)


def content_digest(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _hub_files(spec: DatasetSpec, repo: str, hub: HubAccess) -> list[SourceFile]:
    with scrubbed_errors([hub.token], f"listing {spec.source}", SourceError):
        api = HfApi(token=hub.token, endpoint=hub.endpoint)
        commit = api.dataset_info(repo, revision=spec.revision).sha
        entries = list(
            api.list_repo_tree(repo, repo_type="dataset", revision=commit, recursive=True)
        )
    return [
        SourceFile(
            path=entry.path,
            version=entry.lfs.sha256 if entry.lfs else entry.blob_id,
            revision=commit,
            size=entry.size,
        )
        for entry in entries
        if hasattr(entry, "size") and _matches(entry.path, spec.file_glob)
    ]


def _gcs_files(spec: DatasetSpec) -> list[SourceFile]:
    bucket_name, prefix = _gcs_location(spec.source)
    client = gcs.Client()
    files = []
    for blob in client.list_blobs(bucket_name, prefix=f"{prefix}/" if prefix else None):
        rel = blob.name[len(prefix) + 1 :] if prefix else blob.name
        if _matches(rel, spec.file_glob):
            generation = str(blob.generation)
            version = f"md5:{blob.md5_hash}" if blob.md5_hash else f"generation:{generation}"
            files.append(SourceFile(rel, version, None, blob.size, generation))
    return files


def _fingerprint(stat: os.stat_result) -> str:
    """Size, mtime, ctime and inode: an edit that restores size and mtime still moves the
    ctime (which ``utime`` cannot set), a copy moves the inode."""
    return f"{stat.st_size}-{stat.st_mtime_ns}-{stat.st_ctime_ns}-{stat.st_ino}"


def _local_files(spec: DatasetSpec, known: KnownVersions) -> SourceListing:
    root = Path(spec.source).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{spec.name}: source folder {root} does not exist")
    files, unreadable = [], []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if not (path.is_file() and _matches(rel, spec.file_glob)):
            continue
        try:
            stat = path.stat()
            fingerprint = _fingerprint(stat)
            cached_fingerprint, cached_version = known.get(rel, (None, None))
            if cached_fingerprint == fingerprint and cached_version:
                version = cached_version
            else:
                version = content_digest(path)
                if _fingerprint(path.stat()) != fingerprint:
                    continue  # being written: the next look sees it whole
        except FileNotFoundError:
            continue  # removed while listing
        except OSError as error:
            unreadable.append((rel, f"{path}: cannot read: {error.strerror or error}"))
            continue
        files.append(SourceFile(rel, version, None, stat.st_size, fingerprint))
    return SourceListing(files, unreadable)


def scan_source(
    spec: DatasetSpec, hub: HubAccess = NO_HUB_ACCESS, known: KnownVersions | None = None
) -> SourceListing:
    """The dataset's parquet files in source order (sorted by relative path), reusing the
    ``known`` version of a local file whose fingerprint has not changed, and the local files
    that could not be read. A failure to list the source at all raises."""
    repo = spec.hub_repo
    if repo is not None:
        listing = SourceListing(_hub_files(spec, repo, hub), [])
    elif spec.source.startswith("gs://"):
        listing = SourceListing(_gcs_files(spec), [])
    else:
        listing = _local_files(spec, known or {})
    return SourceListing(sorted(listing.files, key=lambda f: f.path), listing.unreadable)


def list_source_files(
    spec: DatasetSpec, hub: HubAccess = NO_HUB_ACCESS, known: KnownVersions | None = None
) -> list[SourceFile]:
    """The readable files of :func:`scan_source`."""
    return scan_source(spec, hub, known).files


def read_footer(
    spec: DatasetSpec, file: SourceFile, hub: HubAccess = NO_HUB_ACCESS
) -> pq.FileMetaData:
    """The parquet footer of ``file`` (rows, schema), read alone: a few range requests for a
    remote file. Any failure (a corrupt or truncated file, a refused request) is a
    :class:`SourceError` naming the file."""
    uri = source_uri(spec, file.path)
    with scrubbed_errors([hub.token], f"{uri}: cannot read the parquet footer", SourceError):
        repo = spec.hub_repo
        if repo is not None:
            fs = HfFileSystem(token=hub.token, endpoint=hub.endpoint)
            with fs.open(f"datasets/{repo}@{file.revision}/{file.path}", "rb") as handle:
                return pq.ParquetFile(handle).metadata
        if spec.source.startswith("gs://"):
            with _gcs_blob(spec, file).open("rb") as handle:
                return pq.ParquetFile(handle).metadata
        return pq.ParquetFile(Path(spec.source).expanduser() / file.path).metadata


def fetch_source_file(
    spec: DatasetSpec, file: SourceFile, cache_dir: Path, hub: HubAccess = NO_HUB_ACCESS
) -> Path:
    """A local path holding ``file`` at its listed version (downloaded once, then cached)."""
    repo = spec.hub_repo
    if repo is not None:
        with scrubbed_errors(
            [hub.token], f"downloading {source_uri(spec, file.path)}", SourceError
        ):
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
            with replacing(local) as partial:
                _gcs_blob(spec, file).download_to_filename(str(partial))
        return local
    return Path(spec.source).expanduser() / file.path
