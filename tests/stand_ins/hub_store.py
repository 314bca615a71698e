"""On-disk state of the loopback Hub (``hub_server``): repos, their commits and stored blobs.

Writes under ``root``: ``objects/<sha256>`` holds every committed or LFS-uploaded file once
(content-addressed, so the same bytes under two paths are stored once, as on the Hub), and
``tmp/`` holds uploads in flight. Commits live in memory: one branch (``main``) per repo, each
commit a full snapshot ``path -> Blob``. Every public method takes the store lock, so the
threaded server can call it from any request.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

BRANCH = "main"

#: The Hub's default ``.gitattributes`` for a new dataset repo routes these to LFS whatever
#: their size (an excerpt: the patterns a release can contain).
LFS_PATTERNS = ("*.parquet", "*.arrow", "*.npy", "*.index", "*.bin", "*.safetensors", "*.zip")
GITATTRIBUTES = b"".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n".encode() for p in LFS_PATTERNS
)


class HubError(Exception):
    """A request the Hub would refuse: ``status`` and ``code`` become the HTTP answer, ``extra``
    more fields of its JSON body."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


@dataclass(frozen=True)
class Blob:
    """A file of one commit: its content's sha256 and size, whether git keeps it in LFS, and the
    git blob id the Hub reports (of the content, or of the LFS pointer file)."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str
    git_size: int

    @classmethod
    def of(cls, sha256: str, size: int, content: bytes | None) -> Blob:
        """A regular blob when ``content`` is given, else an LFS one."""
        if content is None:
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
            git_bytes = f"{pointer}size {size}\n".encode()
        else:
            git_bytes = content
        git_oid = hashlib.sha1(b"blob %d\0" % len(git_bytes) + git_bytes).hexdigest()
        return cls(sha256, size, content is None, git_oid, len(git_bytes))

    @property
    def remote_oid(self) -> str:
        """What the preupload endpoint reports, for the client to skip unchanged files."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Repo:
    """One repo: visibility and its commits, oldest first; ``tree`` is the head snapshot."""

    repo_id: str
    private: bool
    commits: list[tuple[str, str, dict[str, Blob]]] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.commits[-1][0]

    @property
    def tree(self) -> dict[str, Blob]:
        return self.commits[-1][2]


class HubStore:
    """Repos and content-addressed objects under ``root``; see the module docstring."""

    def __init__(self, root: Path, lfs_threshold: int):
        self.root = Path(root)
        self.lfs_threshold = lfs_threshold
        self.repos: dict[str, Repo] = {}
        #: LFS objects received per sha256: lets tests prove a file was uploaded once.
        self.lfs_uploads: Counter[str] = Counter()
        self._lfs_objects: set[str] = set()
        self._lock = threading.Lock()
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def create_repo(self, repo_id: str, private: bool, url: str) -> Repo:
        """A new repo whose first commit holds ``.gitattributes``, as the Hub makes it; a taken
        name answers 409 with the repo's ``url``, which ``create_repo(exist_ok=True)`` reads."""
        with self._lock:
            if repo_id in self.repos:
                raise HubError(409, "You already created this dataset repo", url=url)
            repo = self.repos[repo_id] = Repo(repo_id, private)
            blob = self._put_bytes(GITATTRIBUTES)
            self._append_commit(repo, "initial commit", {".gitattributes": blob})
            return repo

    def repo(self, repo_id: str, revision: str = BRANCH) -> Repo:
        """The repo, to change ``revision``: only its branch can take commits."""
        with self._lock:
            repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        if revision != BRANCH:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return repo

    def snapshot(self, repo_id: str, revision: str) -> tuple[str, dict[str, Blob]]:
        """The commit id and files of ``revision``, the branch or any commit id, to read."""
        repo = self.repo(repo_id)
        with self._lock:
            for oid, _, tree in reversed(repo.commits):
                if revision in (oid, BRANCH):
                    return oid, tree
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        """``lfs`` for big, binary or LFS-pattern files, ``regular`` otherwise (the Hub's rule)."""
        name = path.rsplit("/", 1)[-1]
        if size == 0:
            return "regular"
        if size >= self.lfs_threshold or b"\0" in sample:
            return "lfs"
        return "lfs" if any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS) else "regular"

    def has_lfs_object(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._lfs_objects

    def receive_lfs(self, sha256: str, size: int, body: BinaryIO, length: int | None) -> None:
        """Store an uploaded LFS object after checking its bytes hash to ``sha256``."""
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in _read_body(body, length):
                    digest.update(chunk)
                    out.write(chunk)
                written = out.tell()
            if digest.hexdigest() != sha256 or written != size:
                raise HubError(400, "uploaded content does not match its oid and size")
            os.replace(tmp, self.object_path(sha256))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        with self._lock:
            self._lfs_objects.add(sha256)
            self.lfs_uploads[sha256] += 1

    def commit(self, repo: Repo, summary: str, parent: str | None, ops: list[dict]) -> str:
        """Apply NDJSON commit operations on the head snapshot; returns the new commit id."""
        with self._lock:
            if parent is not None and parent != repo.head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(repo.tree)
            for op in ops:
                self._apply(tree, op["key"], op["value"])
            return self._append_commit(repo, summary, tree)

    def _apply(self, tree: dict[str, Blob], key: str, value: dict) -> None:
        path = value["path"]
        if key == "file":
            tree[path] = self._put_bytes(base64.b64decode(value["content"]))
        elif key == "lfsFile":
            sha256 = value["oid"]
            if sha256 not in self._lfs_objects:
                raise HubError(422, f"LFS object {sha256} for {path} was never uploaded")
            tree[path] = Blob.of(sha256, self.object_path(sha256).stat().st_size, None)
        elif key in ("deletedFile", "deletedFolder"):
            prefix = path.rstrip("/") + "/"
            doomed = [
                p for p in tree if p == path or (key == "deletedFolder" and p.startswith(prefix))
            ]
            if not doomed:
                raise HubError(404, f"A file with this name doesn't exist: {path}")
            for p in doomed:
                del tree[p]
        else:
            raise HubError(400, f"unsupported commit operation {key!r}")

    def _put_bytes(self, data: bytes) -> Blob:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.object_path(sha256)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        return Blob.of(sha256, len(data), data)

    @staticmethod
    def _append_commit(repo: Repo, summary: str, tree: dict[str, Blob]) -> str:
        # Deterministic ids from parent + message + snapshot, like git's content addressing.
        parent = repo.head if repo.commits else ""
        listing = "".join(f"{p}\0{b.sha256}\0{int(b.lfs)}\n" for p, b in sorted(tree.items()))
        oid = hashlib.sha1(f"{parent}\n{summary}\n{listing}".encode()).hexdigest()
        repo.commits.append((oid, summary, tree))
        return oid


def _read_body(stream: BinaryIO, length: int | None, chunk: int = 1 << 20):
    """Yield a request body sent with Content-Length, or chunked when ``length`` is None."""
    if length is not None:
        while length > 0:
            data = stream.read(min(chunk, length))
            if not data:
                raise HubError(400, "request body ended early")
            length -= len(data)
            yield data
        return
    while True:
        size = int(stream.readline().split(b";")[0].strip(), 16)
        if size == 0:
            stream.readline()
            return
        while size > 0:
            data = stream.read(min(chunk, size))
            if not data:
                raise HubError(400, "request body ended early")
            size -= len(data)
            yield data
        stream.readline()


def read_body(stream: BinaryIO, length: int | None) -> bytes:
    """A whole (small) request body; see ``_read_body``."""
    return b"".join(_read_body(stream, length))
