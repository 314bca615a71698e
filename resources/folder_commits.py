"""A folder of a ``gs://`` root replaced as a unit: staged, journaled, rolled forward.

GCS has no rename, so ``GCSStorage.replace_folder`` cannot swap two folders the way a local
root does. It commits in three steps instead:

1. every file of the new folder is uploaded below ``.commits/<folder>/<version>/`` (the slow
   part). A failure here leaves the folder exactly as it was; the next commit of the folder
   removes what was staged.
2. one object, ``.commits/<folder>/journal.json``, names the version and its files in upload
   order. Its upload (atomic, as every GCS upload) is the commit point.
3. roll forward: each staged file is copied server-side into the folder (the ``last`` names
   last), files the new folder lacks are deleted, then the journal and the staged copies.

Step 3 needs only what the journal names and may be repeated, so whoever finds a journal can
finish it: the writer itself, the next commit of the same folder, and every run's storage setup
(``GCSStorage.setup_for_execution``). Readers never write: ``read_folder`` reads the staged
version while a journal exists, and otherwise the folder itself, checking that no object of it
changed while it was read. So a reader sees the old folder or the new one, never a mix, and a
writer killed at any point leaves the old folder (before the journal) or a commit the next run
completes. A single file read on its own (``read_bytes``) sees the old file or the new one,
each whole.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote, unquote

#: Staged versions and journals live below this folder of the root.
COMMITS = ".commits"
JOURNAL_NAME = "journal.json"
#: A reader tries this many times to see the folder hold still while it reads it.
READ_ATTEMPTS = 5


class CommitStore(Protocol):
    """What a commit needs of a storage (``resources.storage.GCSStorage`` has it)."""

    def upload_file(self, local: Path, path: str) -> None: ...
    def download_file(self, path: str, local: Path) -> None: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, path: str) -> None: ...
    def copy(self, source: str, target: str) -> None: ...
    def generations(self, prefix: str) -> dict[str, int]: ...


class FolderChanging(OSError):
    """The folder was replaced every time a reader tried to read it."""


def _commit_dir(folder: str) -> str:
    # One flat name per folder, so the commits of ``a`` and ``a/b`` never nest.
    return f"{COMMITS}/{quote(folder, safe='')}"


def _journal(folder: str) -> str:
    return f"{_commit_dir(folder)}/{JOURNAL_NAME}"


def _read_journal(store: CommitStore, folder: str) -> dict | None:
    try:
        return json.loads(store.read_bytes(_journal(folder)))
    except FileNotFoundError:
        return None


def replace_folder(
    store: CommitStore, local: Path, folder: str, last: tuple[str, ...] = ()
) -> None:
    """Makes ``folder`` hold exactly the files of ``local``, as one commit."""
    finish_commit(store, folder)  # one a killed writer left: it goes first
    for leftover in store.list(_commit_dir(folder)):  # staged, never committed
        store.delete(leftover)
    version = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
    staged = f"{_commit_dir(folder)}/{version}"
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    for rel in files:
        store.upload_file(local / rel, f"{staged}/{rel}")
    journal = {"version": version, "files": sorted(files, key=lambda rel: rel in last)}
    store.write_bytes(_journal(folder), json.dumps(journal).encode())
    finish_commit(store, folder)


def finish_commit(store: CommitStore, folder: str) -> bool:
    """Rolls forward the commit of ``folder`` whose journal is stored; False if there is none."""
    journal = _read_journal(store, folder)
    if journal is None:
        return False
    staged = f"{_commit_dir(folder)}/{journal['version']}"
    for rel in journal["files"]:
        try:
            store.copy(f"{staged}/{rel}", f"{folder}/{rel}")
        except FileNotFoundError:
            if _read_journal(store, folder) is None:
                return True  # another process finished it meanwhile
            raise
    wanted = {f"{folder}/{rel}" for rel in journal["files"]}
    for stale in sorted(set(store.list(folder)) - wanted):
        store.delete(stale)
    store.delete(_journal(folder))
    for path in store.list(staged):
        store.delete(path)
    return True


def finish_all_commits(store: CommitStore) -> list[str]:
    """Rolls forward every commit a killed writer left; returns their folders."""
    folders = [
        unquote(PurePosixPath(path).parent.name)
        for path in store.list(COMMITS)
        if PurePosixPath(path).name == JOURNAL_NAME
    ]
    return [folder for folder in folders if finish_commit(store, folder)]


def read_folder(store: CommitStore, folder: str, into: Path) -> None:
    """Downloads one version of ``folder`` into the empty local folder ``into``."""
    for attempt in range(READ_ATTEMPTS):
        journal = _read_journal(store, folder)
        try:
            if journal is not None:  # committed, not yet in place: read the staged version
                staged = f"{_commit_dir(folder)}/{journal['version']}"
                _download(store, {rel: f"{staged}/{rel}" for rel in journal["files"]}, into)
                return
            before = store.generations(folder)
            base = PurePosixPath(folder)
            files = {PurePosixPath(p).relative_to(base).as_posix(): p for p in before}
            _download(store, files, into)
            if store.generations(folder) == before and _read_journal(store, folder) is None:
                return
        except FileNotFoundError:
            pass  # a commit finished or began under the reader
        for child in sorted(into.rglob("*"), reverse=True):
            if child.is_dir():
                child.rmdir()
            else:
                child.unlink()
        time.sleep(0.2 * (attempt + 1))
    raise FolderChanging(f"{folder} was replaced during each of {READ_ATTEMPTS} reads")


def _download(store: CommitStore, files: dict[str, str], into: Path) -> None:
    for rel, path in files.items():
        local = into / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(path, local)
