"""A loopback stand-in for the Hugging Face Hub's repo and commit API (docs/architecture.md,
"Offline test doubles"), driven by the real ``huggingface_hub.HfApi`` with
``HF_HUB_DISABLE_XET=1``.

Speaks: ``POST /api/repos/create``, ``POST /api/validate-yaml``, and for dataset repos
``preupload``, ``commit`` (NDJSON: header, file, lfsFile, deletedFile, deletedFolder), ``tree``,
repo info and ``resolve`` (HEAD/GET a file, at the branch or a commit id), plus the git-LFS
batch endpoint with the basic transfer (a PUT to this server, then a verify). Enough for
``create_repo(exist_ok=True)``, ``upload_folder``, ``create_commit``, ``preupload_lfs_files``,
``list_repo_files`` and, to read a repo back, ``hf_hub_download``/``snapshot_download``. Not
spoken: Xet, multipart LFS, pull requests, branches other than ``main``, model and space repos.

Committed files land content-addressed under ``root`` (see ``hub_store``); ``files()`` maps each
path of a commit to its stored bytes so a test can compare them with what it uploaded. With
``token`` set, every API call must carry ``Authorization: Bearer <token>`` (LFS PUTs, like the
Hub's presigned storage URLs, need none). TCP_NODELAY is set on accepted sockets: without it
each keep-alive answer stalls ~40 ms.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from stand_ins.hub_store import BRANCH, Blob, HubError, HubStore, read_body

_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_OID = r"(?P<oid>[0-9a-f]{64})"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class HubServer:
    """The loopback Hub: ``with HubServer(tmp_path) as hub: HfApi(endpoint=hub.url)``.

    ``leaky_errors`` makes a refused request echo the credentials it got in the JSON error body
    (which huggingface_hub puts in its exception text), as a careless proxy might, so tests can
    prove a client keeps the token out of the errors it raises.
    """

    def __init__(
        self,
        root: Path,
        *,
        token: str | None = None,
        lfs_threshold: int = 10 * 1024 * 1024,
        leaky_errors: bool = False,
    ):
        self.store = HubStore(root, lfs_threshold)
        self.token = token
        self.leaky_errors = leaky_errors
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def files(self, repo_id: str) -> dict[str, Path]:
        """Each path at the head of ``repo_id`` -> the stored file with its bytes."""
        tree = self.store.repo(repo_id).tree
        return {path: self.store.object_path(blob.sha256) for path, blob in tree.items()}

    def commits(self, repo_id: str) -> list[str]:
        """Commit ids of ``repo_id``, oldest first (the first one is the repo's creation)."""
        return [oid for oid, _, _ in self.store.repo(repo_id).commits]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubServer

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines would only clutter test output."""

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            for verb, pattern, handler, needs_auth in _ROUTES:
                match = re.fullmatch(pattern, split.path)
                if method in verb.split() and match:
                    body = None if method == "PUT" else read_body(self.rfile, self._length())
                    if needs_auth:
                        self._check_auth(hub)
                    groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    answer = handler(self, hub, body, **groups)
                    if isinstance(answer, _File):
                        self._send_file(answer, with_body=method == "GET")
                    else:
                        self._send(200, answer)
                    return
            raise HubError(404, f"no route for {method} {split.path}")
        except HubError as err:
            self._send(err.status, {"error": str(err), **err.extra}, err)

    def _length(self) -> int | None:
        length = self.headers.get("Content-Length")
        if length is not None:
            return int(length)
        return None if self.headers.get("Transfer-Encoding") == "chunked" else 0

    def _check_auth(self, hub: HubServer) -> None:
        got = self.headers.get("Authorization", "")
        if hub.token is not None and got != f"Bearer {hub.token}":
            message = "Invalid credentials in Authorization header"
            echo = {"error": f"{message} (got {got!r})"} if hub.leaky_errors else {}
            raise HubError(401, message, **echo)

    def _send(self, status: int, payload: Any, err: HubError | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if err is not None:
            self.send_header("X-Error-Message", " ".join(str(err).split()))
            if err.code:
                self.send_header("X-Error-Code", err.code)
            # The request body may be unread after an error: do not reuse the connection.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_file(self, answer: _File, with_body: bool) -> None:
        # The Hub's headers for a file: its etag is the sha256 for LFS, the git blob id else.
        # A ``Range: bytes=a-b`` request gets 206 and those bytes only, as the Hub's storage
        # answers HfFileSystem when it reads a parquet footer.
        blob = answer.blob
        start, stop = 0, blob.size
        wanted = _RANGE.fullmatch(self.headers.get("Range", ""))
        if wanted and blob.size:
            first, last = wanted.group(1), wanted.group(2)
            if first:
                start, stop = int(first), min(int(last) + 1 if last else blob.size, blob.size)
            else:
                start = max(blob.size - int(last), 0)
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(stop - start))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{blob.size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{blob.sha256 if blob.lfs else blob.git_oid}"')
        self.send_header("X-Repo-Commit", answer.commit)
        self.end_headers()
        if with_body:
            with answer.path.open("rb") as f:
                f.seek(start)
                remaining = stop - start
                while remaining:
                    chunk = f.read(min(remaining, 1 << 20))
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    # --- endpoints: each takes (hub, body, **path groups) and returns the JSON answer ---

    def create_repo(self, hub: HubServer, body: bytes) -> dict:
        payload = json.loads(body)
        if payload.get("type") != "dataset":
            raise HubError(400, "this stand-in hosts dataset repos only")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        private = payload.get("private") or payload.get("visibility") == "private"
        url = f"{hub.url}/datasets/{repo_id}"
        hub.store.create_repo(repo_id, bool(private), url)
        return {"url": url, "name": repo_id}

    def validate_yaml(self, hub: HubServer, body: bytes) -> dict:
        content = json.loads(body)["content"]
        if content.startswith("---\n"):
            front = content[4:].split("\n---", 1)[0]
            try:
                meta = yaml.safe_load(front)
            except yaml.YAMLError as exc:
                message = f"Invalid YAML in README.md: {exc}"
                raise HubError(400, message, errors=[{"message": message}]) from exc
            if meta is not None and not isinstance(meta, dict):
                raise HubError(400, "README.md metadata must be a YAML mapping")
        return {"errors": [], "warnings": []}

    def preupload(self, hub: HubServer, body: bytes, repo: str, rev: str) -> dict:
        self._no_pr()
        tree = hub.store.repo(repo, rev).tree
        files = []
        for f in json.loads(body)["files"]:
            existing = tree.get(f["path"])
            sample = base64.b64decode(f["sample"])
            files.append(
                {
                    "path": f["path"],
                    "uploadMode": hub.store.upload_mode(f["path"], f["size"], sample),
                    "shouldIgnore": False,
                    "oid": existing.remote_oid if existing else None,
                }
            )
        return {"files": files, "commitOid": hub.store.repo(repo, rev).head}

    def lfs_batch(self, hub: HubServer, body: bytes, repo: str) -> dict:
        hub.store.repo(repo)
        objects = []
        for obj in json.loads(body)["objects"]:
            oid, size = obj["oid"], obj["size"]
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not hub.store.has_lfs_object(oid):
                entry["actions"] = {
                    "upload": {"href": f"{hub.url}/lfs/{oid}?size={size}", "header": {}},
                    "verify": {"href": f"{hub.url}/lfs/{oid}/verify", "header": {}},
                }
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def lfs_put(self, hub: HubServer, body: None, oid: str) -> dict:
        hub.store.receive_lfs(oid, int(self.query["size"]), self.rfile, self._length())
        return {}

    def lfs_verify(self, hub: HubServer, body: bytes, oid: str) -> dict:
        if not hub.store.has_lfs_object(oid):
            raise HubError(404, f"LFS object {oid} not found")
        return {}

    def commit(self, hub: HubServer, body: bytes, repo: str, rev: str) -> dict:
        self._no_pr()
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        target = hub.store.repo(repo, rev)
        oid = hub.store.commit(target, header["summary"], header.get("parentCommit"), lines[1:])
        return {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid}

    def tree(self, hub: HubServer, body: bytes, repo: str, rev: str, path: str = "") -> list:
        recursive = self.query.get("recursive", "false").lower() == "true"
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file, blob in sorted(hub.store.snapshot(repo, rev)[1].items()):
            if not file.startswith(prefix):
                continue
            parts = file[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "oid": "0" * 40, "path": folder})
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[file] = _file_entry(file, blob)
        return list(entries.values())

    def info(self, hub: HubServer, body: bytes, repo: str, rev: str = BRANCH) -> dict:
        oid, tree = hub.store.snapshot(repo, rev)
        siblings = [{"rfilename": p} for p in sorted(tree)]
        private = hub.store.repo(repo).private
        return {"id": repo, "sha": oid, "private": private, "siblings": siblings}

    def resolve(self, hub: HubServer, body: bytes, repo: str, rev: str, path: str) -> _File:
        oid, tree = hub.store.snapshot(repo, rev)
        blob = tree.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound")
        return _File(hub.store.object_path(blob.sha256), blob, oid)

    def _no_pr(self) -> None:
        if self.query.get("create_pr"):
            raise HubError(400, "this stand-in does not open pull requests")


@dataclass(frozen=True)
class _File:
    """A stored file to send as the answer, with the commit it was resolved at."""

    path: Path
    blob: Blob
    commit: str


def _file_entry(path: str, blob: Blob) -> dict:
    entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.git_size}
    return entry


#: (methods, path pattern, handler, needs the token)
_ROUTES: list[tuple[str, str, Callable[..., Any], bool]] = [
    ("POST", r"/api/repos/create", _Handler.create_repo, True),
    ("POST", r"/api/validate-yaml", _Handler.validate_yaml, True),
    ("POST", rf"/api/datasets/{_REPO}/preupload/(?P<rev>[^/]+)", _Handler.preupload, True),
    ("POST", rf"/api/datasets/{_REPO}/commit/(?P<rev>[^/]+)", _Handler.commit, True),
    ("GET", rf"/api/datasets/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", _Handler.tree, True),
    ("GET", rf"/api/datasets/{_REPO}(?:/revision/(?P<rev>[^/]+))?", _Handler.info, True),
    ("POST", rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch, True),
    ("GET HEAD", rf"/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", _Handler.resolve, True),
    ("PUT", rf"/lfs/{_OID}", _Handler.lfs_put, False),
    ("POST", rf"/lfs/{_OID}/verify", _Handler.lfs_verify, True),
]
