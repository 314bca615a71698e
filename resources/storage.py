"""Where the pipeline's files live: a local folder or a ``gs://bucket/prefix``.

Every asset reads and writes through a :class:`StorageResource` with paths relative to the root
(``<ds>/images/<partition>.parquet``, docs/architecture.md "Storage layout"), so asset code
never knows which backend holds the bytes. Writes are atomic on both backends: a local write
goes to a temporary file in the same folder and is renamed over the target; a GCS write is one
object upload, which GCS publishes whole or not at all. Readers never see half a file.
Local files get the mode the umask gives (0666 less the umask), so another user can read
a shared store when the umask allows it.
A failed GCS operation is a :class:`StorageError` naming the object (a missing object a
FileNotFoundError); an interrupted upload publishes nothing.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource, InitResourceContext
from dagster_gcp import GCSResource
from google.api_core.retry import Retry
from google.cloud import storage as gcs
from google.cloud.storage.retry import DEFAULT_RETRY
from pydantic import Field, PrivateAttr

from clip_assets.atomic_files import TEMP_SUFFIX, replacing, unique_dir
from clip_assets.paths import cache_dir
from resources import folder_commits
from resources.scratch import owner_tag, remove_orphans, scratch_dir

#: Scratch folders live in this folder of a local root (see ``resources.scratch``).
SCRATCH_FOLDER = ".scratch"


class StorageError(OSError):
    """A storage operation failed; the message names the file or object and the cause."""


def _check_relative(path: str) -> str:
    """Refuses absolute paths and ``..`` so nothing is written outside the root."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"storage paths are relative to the root, without '..': {path!r}")
    return pure.as_posix()


class StorageResource(ConfigurableResource, ABC):
    """Reads and writes the pipeline's files below one root.

    Reads: files previously written below the root. Writes: files below the root, atomically.
    Guarantees: a path either holds a complete file or nothing; ``list`` returns sorted
    relative paths, so partition files come back in partition order.
    """

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Stores ``data`` at ``path``, replacing any earlier file atomically."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """Returns the whole file at ``path``; FileNotFoundError when there is none."""

    @abstractmethod
    def upload_file(self, local: Path, path: str) -> None:
        """Copies the local file to ``path`` atomically."""

    @abstractmethod
    def download_file(self, path: str, local: Path) -> None:
        """Copies the file at ``path`` to the local file ``local``."""

    @abstractmethod
    def open_read(self, path: str) -> BinaryIO:
        """A seekable binary reader of the file at ``path`` (ranged reads on GCS, so reading a
        parquet footer or a few columns does not fetch the whole object)."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path``."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Sorted relative paths of the files below the folder ``prefix``."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Removes the file at ``path`` if there is one."""

    @abstractmethod
    def uri(self, path: str) -> str:
        """A location a person can paste: an absolute local path or a ``gs://`` URL."""

    @abstractmethod
    def scratch_area(self) -> Path:
        """The local folder that holds this storage's scratch folders."""

    @abstractmethod
    def replace_folder(self, local: Path, prefix: str, last: tuple[str, ...] = ()) -> None:
        """Makes the folder ``prefix`` hold exactly the files of the local folder ``local``.

        Readers see the old folder or the new one, never a mix, where the backend allows
        (a local root swaps folders by rename); on GCS every file is one atomic upload, the
        names in ``last`` are uploaded after the others (readers key on them) and files the
        new folder lacks are deleted afterwards.
        """

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Removes what runs killed mid-write left behind (see ``resources.scratch``)."""
        for leftover in self.remove_orphans():
            context.log.info(f"removed {leftover}, left by a process that is gone")

    def remove_orphans(self) -> list[Path]:
        """Scratch folders of processes that are gone, removed; returns them."""
        return remove_orphans(self.scratch_area())

    @contextmanager
    def scratch(self, label: str) -> Iterator[Path]:
        """A fresh local folder for work in progress, removed when the block ends."""
        with scratch_dir(self.scratch_area(), label) as folder:
            yield folder

    def write_table(self, path: str, table: pa.Table) -> None:
        """Writes ``table`` as one parquet file at ``path`` (zstd), atomically."""
        with self.scratch("table") as tmp:
            local = tmp / "table.parquet"
            pq.write_table(table, local, compression="zstd")
            self.upload_file(local, path)

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """Reads the parquet file at ``path`` (only ``columns`` when given)."""
        with self.open_read(path) as source:
            return pq.read_table(source, columns=columns)

    def read_schema(self, path: str) -> pa.Schema:
        """The schema (with its metadata) of the parquet file at ``path``: the footer only."""
        with self.open_read(path) as source:
            return pq.read_schema(source)

    def read_parquet_metadata(self, path: str) -> pq.FileMetaData:
        """The footer of the parquet file at ``path``: row counts and key-value metadata."""
        with self.open_read(path) as source:
            return pq.read_metadata(source)

    @contextmanager
    def local_file(self, path: str) -> Iterator[Path]:
        """Yields a local path holding the file at ``path`` for the duration of the block."""
        with self.scratch("file") as tmp:
            local = tmp / PurePosixPath(path).name
            self.download_file(path, local)
            yield local

    @contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:
        """Yields a local folder holding every file below ``prefix``, same relative layout."""
        with self.scratch("folder") as tmp:
            base = PurePosixPath(_check_relative(prefix))
            for path in self.list(prefix):
                local = tmp / PurePosixPath(path).relative_to(base)
                local.parent.mkdir(parents=True, exist_ok=True)
                self.download_file(path, local)
            yield tmp


class LocalStorage(StorageResource):
    """Files below a local folder (the default root is ``./data``)."""

    root: str = Field(default="data", description="Local folder that holds every dataset.")

    def _path(self, path: str) -> Path:
        return Path(self.root).expanduser().resolve() / _check_relative(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target, owner_tag()) as tmp:
            tmp.write_bytes(data)

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def open_read(self, path: str) -> BinaryIO:
        return self._path(path).open("rb")

    def upload_file(self, local: Path, path: str) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target, owner_tag()) as tmp:
            shutil.copyfile(local, tmp)

    def download_file(self, path: str, local: Path) -> None:
        shutil.copyfile(self._path(path), local)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        root = Path(self.root).expanduser().resolve()
        return sorted(
            p.relative_to(root).as_posix()
            for p in folder.rglob("*")
            # Temporary files of writes in flight are not files of the store yet.
            if p.is_file() and not p.name.endswith(TEMP_SUFFIX)
        )

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def uri(self, path: str) -> str:
        return str(self._path(path))

    def scratch_area(self) -> Path:
        """``<root>/.scratch``: on the root's own filesystem, so finished work is renamed
        into place rather than copied."""
        return Path(self.root).expanduser().resolve() / SCRATCH_FOLDER

    def remove_orphans(self) -> list[Path]:
        """Also the half-written ``.tmp`` files of writes that were killed."""
        root = Path(self.root).expanduser().resolve()
        return remove_orphans(self.scratch_area(), stored=root)

    def replace_folder(self, local: Path, prefix: str, last: tuple[str, ...] = ()) -> None:
        target = self._path(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        new = _sibling_dir(target, "new")
        try:
            if local.stat().st_dev == new.stat().st_dev:
                # Scratch space is on the root's filesystem: move the finished folder in.
                os.replace(local, new)
            else:
                shutil.copytree(local, new, dirs_exist_ok=True)
            old = None
            if target.exists():
                old = _sibling_dir(target, "old")
                os.replace(target, old / target.name)
            os.replace(new, target)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    @contextmanager
    def local_file(self, path: str) -> Iterator[Path]:
        """The stored file itself: no copy is needed for a local root."""
        yield self._path(path)

    @contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:
        """The stored folder itself: no copy is needed for a local root."""
        yield self._path(prefix)


class GCSStorage(StorageResource):
    """Objects below ``gs://<bucket>/<prefix>``, through dagster-gcp's GCS client.

    Credentials come from the environment (Application Default Credentials); with
    ``STORAGE_EMULATOR_HOST`` set the client talks to that emulator anonymously.
    """

    bucket: str = Field(description="GCS bucket name.")
    prefix: str = Field(default="", description="Object prefix below which datasets live.")
    project: str | None = Field(default=None, description="GCP project of the client.")
    retry_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a failing request is retried before the operation fails "
        "(google-cloud-storage's default); an upload is retried whole, so it stays atomic.",
    )

    _client: gcs.Client | None = PrivateAttr(default=None)

    def _bucket(self) -> gcs.Bucket:
        if self._client is None:
            self._client = GCSResource(project=self.project).get_client()
        return self._client.bucket(self.bucket)

    def _name(self, path: str) -> str:
        rel = _check_relative(path)
        return f"{self.prefix.strip('/')}/{rel}" if self.prefix.strip("/") else rel

    @contextmanager
    def _reported(self, action: str, path: str) -> Iterator[None]:
        """Failures as :class:`StorageError` naming the object (a missing one as
        FileNotFoundError): a dropped connection otherwise says only "Connection aborted"."""
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as error:
            if getattr(error, "code", None) == 404:  # google.api_core NotFound
                raise FileNotFoundError(self.uri(path)) from error
            raise StorageError(
                f"{action} {self.uri(path)} failed: {type(error).__name__}: {error}"
            ) from error

    @property
    def _retry(self) -> Retry:
        return DEFAULT_RETRY.with_timeout(self.retry_timeout_s)

    def write_bytes(self, path: str, data: bytes) -> None:
        with self._reported("writing", path):
            self._bucket().blob(self._name(path)).upload_from_string(data, retry=self._retry)

    def read_bytes(self, path: str) -> bytes:
        with self._reported("reading", path):
            return self._bucket().blob(self._name(path)).download_as_bytes(retry=self._retry)

    def open_read(self, path: str) -> BinaryIO:
        with self._reported("opening", path):
            blob = self._bucket().blob(self._name(path))
            if not blob.exists(retry=self._retry):
                raise FileNotFoundError(self.uri(path))
            return blob.open("rb", retry=self._retry)

    def upload_file(self, local: Path, path: str) -> None:
        with self._reported(f"uploading {local} to", path):
            blob = self._bucket().blob(self._name(path))
            blob.upload_from_filename(str(local), retry=self._retry)

    def download_file(self, path: str, local: Path) -> None:
        with self._reported("downloading", path):
            blob = self._bucket().blob(self._name(path))
            blob.download_to_filename(str(local), retry=self._retry)

    def exists(self, path: str) -> bool:
        with self._reported("looking for", path):
            return self._bucket().blob(self._name(path)).exists(retry=self._retry)

    def list(self, prefix: str) -> list[str]:
        return sorted(self.generations(prefix))

    def delete(self, path: str) -> None:
        with self._reported("deleting", path):
            blob = self._bucket().blob(self._name(path))
            if blob.exists(retry=self._retry):
                blob.delete(retry=self._retry)

    def uri(self, path: str) -> str:
        return f"gs://{self.bucket}/{self._name(path)}"

    def scratch_area(self) -> Path:
        """A local folder in the cache (``$CLIP_ASSETS_CACHE/scratch``): a bucket has none."""
        return cache_dir() / SCRATCH_FOLDER.lstrip(".")

    def copy(self, source: str, target: str) -> None:
        """Copies the object at ``source`` to ``target`` inside the bucket (no bytes pass
        through this process); FileNotFoundError when ``source`` is gone."""
        with self._reported(f"copying {self.uri(source)} to", target):
            bucket = self._bucket()
            source_blob = bucket.blob(self._name(source))
            bucket.copy_blob(source_blob, bucket, self._name(target), retry=self._retry)

    def generations(self, prefix: str) -> dict[str, int]:
        """Each object below the folder ``prefix`` with its generation (which changes on
        every write of it)."""
        root = self._name(prefix).rstrip("/") + "/"
        base = self.prefix.strip("/")
        strip = len(base) + 1 if base else 0
        with self._reported("listing", prefix):
            blobs = self._bucket().list_blobs(prefix=root, retry=self._retry)
            return {blob.name[strip:]: int(blob.generation) for blob in blobs}

    def replace_folder(self, local: Path, prefix: str, last: tuple[str, ...] = ()) -> None:
        """Staged below ``.commits/``, committed by one journal object, rolled forward by
        server-side copies (``resources.folder_commits``): readers through ``local_dir`` see
        the old folder or the new one."""
        folder_commits.replace_folder(self, local, _check_relative(prefix), last)

    @contextmanager
    def local_dir(self, prefix: str) -> Iterator[Path]:
        """One version of the folder ``prefix``, downloaded: never files of two commits."""
        with self.scratch("folder") as tmp:
            folder_commits.read_folder(self, _check_relative(prefix), tmp)
            yield tmp

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Also finishes the folder commits a killed writer left (``folder_commits``)."""
        super().setup_for_execution(context)
        for folder in folder_commits.finish_all_commits(self):
            context.log.info(f"finished replacing {self.uri(folder)}, left by a killed run")


def _sibling_dir(target: Path, kind: str) -> Path:
    """An empty hidden folder beside ``target``, named for its owner (``resources.scratch``),
    with the mode the umask gives."""
    return unique_dir(target.parent, f".{target.name}{owner_tag()}{kind}-")


def storage_for_root(root: str) -> StorageResource:
    """The storage resource for a root given as a local folder or ``gs://bucket/prefix``."""
    if root.startswith("gs://"):
        bucket, _, prefix = root.removeprefix("gs://").partition("/")
        if not bucket:
            raise ValueError(f"a gs:// root names a bucket: {root!r}")
        return GCSStorage(bucket=bucket, prefix=prefix)
    return LocalStorage(root=root)
