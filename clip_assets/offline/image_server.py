"""A real HTTP/1.1 server on 127.0.0.1 that serves scripted behaviours per path.

Reads a mapping ``path -> Route`` (built with the helpers below); serves it from a background
thread until the ``with`` block ends. It writes nothing to disk. Guarantees: every request is
counted in ``hits[path]`` before it is answered, every body byte written to a socket is counted in
``bytes_sent[path]``, and every accepted TCP connection in ``connections`` — so tests can assert
retries, early hang-ups and "never connected" on the server side. TCP_NODELAY is set on every
accepted socket: without it each keep-alive response stalls ~40 ms (Nagle + delayed ACK) and
every timing taken against the server is wrong.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Route:
    """What one path answers. Use the helper functions rather than building it by hand."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "image/jpeg"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # before the status line
    drip_interval_s: float | None = None  # body sent one small chunk per interval
    drip_chunk: int = 16
    generated_size: int | None = None  # serve this many filler bytes instead of ``body``
    announce_length: bool = True  # False: no Content-Length, the body ends with the connection
    hang: bool = False  # accept, read the request, never answer
    fail_times: int = 0  # first N requests get ``fail_status`` instead
    fail_status: int = 503
    fail_headers: tuple[tuple[str, str], ...] = ()
    held_until: threading.Event | None = None  # answered only once this event is set


def image(data: bytes, content_type: str = "image/jpeg", **headers: str) -> Route:
    """A 200 answer with ``data``; keyword headers use ``_`` for ``-`` (``X_Robots_Tag=...``)."""
    extra = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Route(body=data, content_type=content_type, headers=extra)


def status(code: int, retry_after: str | None = None, body: bytes = b"error") -> Route:
    """An error answer such as 404 or 503, optionally with ``Retry-After``."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Route(status=code, body=body, content_type="text/plain", headers=headers)


def redirect(location: str, code: int = 302) -> Route:
    """A redirect to ``location`` (absolute URL or path)."""
    return Route(status=code, content_type=None, headers=(("Location", location),))


def flaky(route: Route, times: int, code: int = 503, retry_after: str | None = None) -> Route:
    """``route``, but the first ``times`` requests answer ``code`` (with ``Retry-After``)."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return replace(route, fail_times=times, fail_status=code, fail_headers=headers)


def slow(route: Route, delay_s: float) -> Route:
    """``route`` answered after ``delay_s`` seconds of silence."""
    return replace(route, delay_s=delay_s)


def drip(route: Route, interval_s: float, chunk: int = 16) -> Route:
    """``route`` with its body sent ``chunk`` bytes per ``interval_s``: never idle long enough
    to trip a read timeout, so only a total time limit stops it."""
    return replace(route, drip_interval_s=interval_s, drip_chunk=chunk)


def huge(size: int, content_type: str = "image/jpeg", announce: bool = True) -> Route:
    """A body of ``size`` filler bytes, streamed; ``announce=False`` omits Content-Length."""
    return Route(generated_size=size, content_type=content_type, announce_length=announce)


def held(route: Route, release: threading.Event) -> Route:
    """``route`` answered only once ``release`` is set: a test holds a run at a known point."""
    return replace(route, held_until=release)


def hang() -> Route:
    """Accepts the request and never answers."""
    return Route(hang=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        """Quiet when a client hangs up (timeouts and size caps do that on purpose)."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def get_request(self):  # type: ignore[override]
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        owner: ImageServer = self.owner  # type: ignore[attr-defined]
        with owner._lock:
            owner.connections += 1
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real image hosts
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: tests and benchmarks would drown in access logs."""

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        owner: ImageServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        with owner._lock:
            owner.hits[path] += 1
            n = owner.hits[path]
            owner.user_agents.append(self.headers.get("User-Agent", ""))
        route = owner.routes.get(path)
        if owner.latency_s:
            time.sleep(owner.latency_s)
        if route is None:
            route = status(404, body=b"not found")
        if route.hang:
            owner._stop.wait()
            self.close_connection = True
            return
        if route.delay_s and owner._stop.wait(route.delay_s):
            return
        while route.held_until is not None and not route.held_until.wait(0.05):
            if owner._stop.is_set():
                return
        if n <= route.fail_times:
            route = replace(
                status(route.fail_status, body=b"try later"), headers=route.fail_headers
            )
        self._answer(owner, path, route, send_body)

    def _answer(self, owner: ImageServer, path: str, route: Route, send_body: bool) -> None:
        size = route.generated_size if route.generated_size is not None else len(route.body)
        self.send_response(route.status)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        for key, value in route.headers:
            self.send_header(key, value)
        if route.announce_length:
            self.send_header("Content-Length", str(size))
        else:
            self.close_connection = True  # body ends when the connection does
        self.end_headers()
        if not send_body:
            return
        step = route.drip_chunk if route.drip_interval_s is not None else _CHUNK
        try:
            for start in range(0, size, step):
                chunk = (
                    route.body[start : start + step]
                    if route.generated_size is None
                    else b"\0" * min(step, size - start)
                )
                self.wfile.write(chunk)
                with owner._lock:
                    owner.bytes_sent[path] += len(chunk)
                if route.drip_interval_s is not None and owner._stop.wait(route.drip_interval_s):
                    return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up early: that is the point


class ImageServer:
    """``with ImageServer(routes) as srv: srv.url("/a.jpg")``.

    ``latency_s`` delays every request (a stand-in for a far-away host); ``tls`` (a server-side
    SSL context) serves https instead of http; ``port`` 0 picks a free port (a given one lets a
    restarted server answer the same URLs); ``address`` is a loopback address to bind (several
    servers on one port at 127.0.0.x stand for several hosts). ``routes`` may be
    extended with ``srv.routes[path] = route`` after start (e.g. redirects to ``srv.url``).
    """

    def __init__(
        self,
        routes: dict[str, Route] | None = None,
        latency_s: float = 0.0,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
        address: str = "127.0.0.1",
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self._port = port
        self.address = address
        self.latency_s = latency_s
        self.tls = tls
        self.hits: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.user_agents: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.address}:{self.port}{path}"

    def start(self) -> ImageServer:
        """Binds ``port`` (0: an ephemeral one) on ``address`` and serves from a daemon thread."""
        self._httpd = _Server((self.address, self._port), _Handler)
        if self.tls is not None:
            # Handshake in the handler thread, so a silent client cannot stall accept().
            self._httpd.socket = self.tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Releases hanging/dripping handlers, stops serving and closes the socket."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
