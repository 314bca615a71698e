"""A loopback "web" for the rehearsal: many hosts, crawl-like images, DataComp-like failures.

Every URL says what it does in its path, ``/<kind>/<row>/<pool item>.<ext>``, so the server
holds no per-URL table (a million URLs cost nothing) and the source generator decides the mix.
Hosts are loopback addresses ``127.0.0.2 ..`` on one port: the downloader's per-host limits
apply per address, as they would per site. The server is one asyncio process (own GIL, own
CPU figures), every socket with TCP_NODELAY, HTTP/1.1 keep-alive, and answers each request after
a latency drawn around ``--latency`` (log-normal jitter), so it models far-away hosts rather
than a fast local disk.

Kinds (see ``KINDS`` for the default shares): ``ok``; permanent failures ``404``, ``403``,
``410``, ``html`` (a page, not an image), ``trunc`` (the first half of a JPEG); transient ones
``503`` (every attempt), ``503once`` and ``429once`` (the first attempt fails, ``429`` with
``Retry-After: 1``), ``slow`` (silent past the downloader's read timeout, every attempt),
``refused`` (nothing listens: the URL points at port 9); opt-outs ``noai`` (``X-Robots-Tag:
noai``); ``changed`` (the bytes differ from the sha256 the crawl recorded).

Run as ``python _loopback_web.py POOL_DIR HOSTS LATENCY_S [PORT]`` it serves until SIGTERM and
prints ``{"port": N, "hosts": [...]}`` on its first stdout line; PORT (default: any free one)
lets a resumed rehearsal serve the URLs its source already names.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import sys
from pathlib import Path

#: kind -> share of the source's rows (the rest are ``ok``). Near DataComp's proportions:
#: ~12% permanent, ~4% transient, ~2% opted out, ~1.5% changed since the crawl.
KINDS = {
    "404": 0.055,
    "403": 0.02,
    "410": 0.01,
    "html": 0.02,
    "trunc": 0.015,
    "503": 0.008,
    "503once": 0.01,
    "429once": 0.01,
    "slow": 0.003,
    "refused": 0.01,
    "noai": 0.02,
    "changed": 0.015,
}
#: Seconds a ``slow`` answer stays silent: past the downloader's 10 s read timeout.
SLOW_S = 12.0
_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
_REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 410: "Gone", 429: "Too Many Requests"}
_HTML = b"<html><head><title>Moved</title></head><body>This page has moved.</body></html>"


class LoopbackWeb:
    """The server's state: the pool's bytes and which fail-once URLs were already hit."""

    def __init__(self, pool: Path, latency_s: float) -> None:
        self.items = {p.name: p.read_bytes() for p in sorted(pool.iterdir()) if p.suffix != ""}
        self.latency_s = latency_s
        self.seen: set[str] = set()
        self.rng = random.Random(0)

    def _delay(self) -> float:
        return min(1.0, self.latency_s * self.rng.lognormvariate(0.0, 0.35))

    async def answer(self, path: str, writer: asyncio.StreamWriter, head: bool) -> bool:
        """Writes the answer to ``path``; False when the connection must close."""
        await asyncio.sleep(self._delay())
        parts = path.split("/")
        kind, name = (parts[1], parts[-1]) if len(parts) >= 4 else ("404", "")
        body = self.items.get(name)
        if body is None or kind in ("404", "403", "410"):
            code = int(kind) if kind in ("403", "410") else 404
            return await _send(writer, code, b"not here", "text/plain", head=head)
        if kind == "slow":
            await asyncio.sleep(SLOW_S)
        if kind in ("503", "503once", "429once") and (kind == "503" or path not in self.seen):
            self.seen.add(path)
            if kind == "429once":
                extra = [("Retry-After", "1")]
                return await _send(writer, 429, b"slow down", "text/plain", extra, head)
            return await _send(writer, 503, b"try later", "text/plain", head=head)
        if kind == "html":
            return await _send(writer, 200, _HTML, "text/html", head=head)
        if kind == "trunc":
            body = body[: len(body) // 2]
        extra = [("X-Robots-Tag", "noai")] if kind == "noai" else []
        return await _send(writer, 200, body, _TYPES[name.rsplit(".", 1)[1]], extra, head)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target = line.decode("latin-1").split(" ", 2)[:2]
                while await reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                if not await self.answer(target.split("?", 1)[0], writer, method == "HEAD"):
                    break
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Shutdown cancels the connections still open (a ``slow`` answer's sleep); ending
            # quietly keeps asyncio from logging each as an error in the benchmark's output.
            return
        finally:
            writer.close()


async def _send(
    writer: asyncio.StreamWriter,
    code: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
    head: bool = False,
) -> bool:
    lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}", f"Content-Type: {content_type}"]
    lines += [f"{key}: {value}" for key, value in extra or []]
    lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head:
        writer.write(body)
    await writer.drain()
    return True


async def _serve(pool: Path, hosts: int, latency_s: float, port: int) -> None:
    web = LoopbackWeb(pool, latency_s)
    addresses = [f"127.0.0.{2 + i}" for i in range(hosts)]
    first = await asyncio.start_server(web.handle, addresses[0], port, backlog=4096)
    port = first.sockets[0].getsockname()[1]
    servers = [first]
    for address in addresses[1:]:
        servers.append(await asyncio.start_server(web.handle, address, port, backlog=4096))
    print(json.dumps({"port": port, "hosts": addresses}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(f"usage: {sys.argv[0]} POOL_DIR HOSTS LATENCY_S [PORT]")
    port = int(sys.argv[4]) if len(sys.argv) == 5 else 0
    asyncio.run(_serve(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), port))
