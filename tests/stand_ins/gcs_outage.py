"""A GCS emulator that can be stopped in the middle of an upload and started again.

:class:`StoppableGcs` runs gcp-storage-emulator on disk (objects survive a restart) behind a
loopback TCP relay, and clients talk to the relay (``STORAGE_EMULATOR_HOST=<url>``).
``stop_during_upload_of(name)`` arms the relay: the first request that carries the object
name ``name`` in its body (an upload; reads spell the name URL-encoded in the path) is
forwarded only up to the end of that name (``stop_at(pattern)`` arms any regular expression
over the raw request bytes, e.g. a server-side copy's URL-encoded target), then both
connections are closed and the emulator is stopped, as if the server died with the upload
half sent. The cut falls inside the upload's metadata part on purpose: a real GCS never
publishes part of an object, while the emulator's lenient multipart parser would store a
truncated body. Until ``start()``
brings it back (same port, same objects) every connection is closed unanswered.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path

from gcp_storage_emulator.server import Server, create_server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StoppableGcs:
    """``with StoppableGcs(tmp_path / "gcs", "bucket") as gcs:`` then ``gcs.url``."""

    def __init__(self, data_dir: Path, bucket: str) -> None:
        self._data_dir = Path(data_dir)
        self._bucket = bucket
        self._emulator_port = _free_port()
        self._emulator: Server | None = None
        self._created = False
        self._marker: re.Pattern[bytes] | None = None
        self._lock = threading.Lock()
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> None:
        """Starts (or restarts) the emulator with the objects stored so far."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        bucket = None if self._created else self._bucket
        self._emulator = create_server(
            "127.0.0.1", self._emulator_port, default_bucket=bucket, data_dir=str(self._data_dir)
        )
        self._emulator.start()
        self._created = True
        self.stopped.clear()

    def stop(self) -> None:
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        self.stopped.set()

    def stop_during_upload_of(self, name: str) -> None:
        """Arms the cut for the next upload of the object called ``name`` (bucket-relative)."""
        self.stop_at(re.escape(name.encode()))

    def stop_at(self, pattern: bytes) -> None:
        """Arms the cut for the next request whose bytes match ``pattern``."""
        with self._lock:
            self._marker = re.compile(pattern)

    def __enter__(self) -> StoppableGcs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._listener.close()
        self.stop()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._emulator_port))
            except OSError:  # stopped: the connection is closed unanswered
                client.close()
                continue
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: tuple | None) -> None:
        """Copies ``source`` to ``sink``; on the client side (``watch``) cuts at the marker."""
        tail = b""
        try:
            while chunk := source.recv(65536):
                cut = self._cut_point(tail, chunk) if watch else None
                if cut is None:
                    sink.sendall(chunk)
                    tail = chunk[-256:]
                    continue
                sink.sendall(chunk[:cut])
                for end in watch:
                    end.shutdown(socket.SHUT_RDWR)
                self.stop()
                return
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def _cut_point(self, tail: bytes, chunk: bytes) -> int | None:
        """Where in ``chunk`` the armed name ends, if it is in ``tail + chunk``; disarms."""
        with self._lock:
            marker = self._marker
            if marker is None:
                return None
            found = marker.search(tail + chunk)
            if found is None:
                return None
            self._marker = None
        return max(0, found.end() - len(tail))
