"""Which URLs we may fetch, and which addresses we connect to.

``parse_url`` refuses anything but http(s) URLs with a host. ``Resolver.check`` resolves the
host once, refuses it when any of its addresses is private, loopback, link-local, multicast,
reserved or unspecified (unless the settings allow it), and caches the answer.
``GuardedBackend`` is the HTTP client's only way to open a TCP connection, and it connects
only to addresses ``check`` approved, from that cache: a second lookup could otherwise be
answered differently (DNS rebinding). Both run before every connection, including after each
redirect. Nothing here opens a socket except ``GuardedBackend.connect_tcp``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpcore
import httpx

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings

# getaddrinfo's answers for a name that does not exist (as opposed to a resolver failing).
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}

# Hostnames after IDNA encoding (httpx does it), or IP literals.
_HOST = re.compile(r"[a-z0-9_.-]+|[0-9a-f:.%]+")


@dataclass(frozen=True)
class Target:
    """A checked URL: ``url`` as given, ``host`` and ``port`` to resolve."""

    url: httpx.URL
    host: str
    port: int


def parse_url(url: str | None) -> Target | str:
    """A ``Target`` for an absolute http(s) URL, else the reason it is refused."""
    if url is None or not url.strip():
        return reasons.MISSING_URL
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):
        return reasons.BAD_URL
    if parsed.scheme not in ("http", "https"):
        return reasons.UNSUPPORTED_SCHEME if parsed.scheme else reasons.BAD_URL
    if not parsed.host:
        return reasons.BAD_URL
    host = parsed.host.lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not _HOST.fullmatch(host) or not 0 < port < 65536:
        return reasons.BAD_URL
    return Target(parsed, host, port)


def is_public(address: str) -> bool:
    """True for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


class Resolver:
    """Resolves and checks hosts for one event loop; caches answers for its lifetime.

    ``check`` returns the addresses that may be connected to, ``pin`` the first of them, each
    with a reason instead when refused (``private_address``, ``dns_error``).
    """

    def __init__(self, settings: DownloadSettings) -> None:
        self._settings = settings
        self._allowed = {h.lower().strip("[]") for h in settings.allowed_hosts}
        self._cache: dict[tuple[str, int], asyncio.Future[list[str] | str]] = {}

    async def pin(self, target: Target) -> tuple[str | None, str | None]:
        """``(ip, None)`` when ``target`` may be fetched, ``(None, reason)`` otherwise."""
        addresses, reason = await self.check(target)
        return (addresses[0], None) if addresses else (None, reason)

    async def check(self, target: Target) -> tuple[list[str], str | None]:
        """Every address of ``target`` when all may be connected to, else ``([], reason)``."""
        addresses = await self._lookup(target.host, target.port)
        if isinstance(addresses, str):
            return [], addresses
        trusted = self._settings.allow_private_addresses or target.host in self._allowed
        if not trusted and not all(is_public(a) for a in addresses):
            return [], reasons.PRIVATE_ADDRESS
        return addresses, None

    async def _lookup(self, host: str, port: int) -> list[str] | str:
        # One lookup per host however many URLs wait on it; shielded so a request that
        # times out does not cancel the answer the others are waiting for.
        key = (host, port)
        pending = self._cache.get(key)
        if pending is None:
            pending = self._cache[key] = asyncio.ensure_future(self._resolve(host, port))
        answer = await asyncio.shield(pending)
        if answer == reasons.DNS_ERROR and self._cache.get(key) is pending:
            del self._cache[key]  # a transient failure: the next retry asks again
        return answer

    @staticmethod
    async def _resolve(host: str, port: int) -> list[str] | str:
        try:
            ipaddress.ip_address(host)
            return [host]  # an IP literal needs no lookup
        except ValueError:
            pass
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            return reasons.DNS_NOT_FOUND if exc.errno in _NO_SUCH_NAME else reasons.DNS_ERROR
        except (OSError, UnicodeError):
            return reasons.DNS_ERROR
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return addresses or reasons.DNS_ERROR


class RefusedAddress(httpcore.ConnectError):
    """Raised instead of connecting to an address the settings forbid."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses ``resolver`` approves.

    The HTTP client asks it for every new TCP connection; it answers from the resolver's cache
    (filled by the pre-check) so the address connected to is the address checked.
    """

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        """Connects to the first reachable checked address of ``host`` (a host may publish an
        IPv6 address this machine cannot reach); raises ``RefusedAddress`` if it is refused."""
        addresses, reason = await self._resolver.check(Target(httpx.URL(), host.lower(), port))
        if not addresses:
            raise RefusedAddress(reason or reasons.PRIVATE_ADDRESS)
        for ip in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(
                    ip, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(
            addresses[-1], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        """Unix sockets are never a web host."""
        raise RefusedAddress(reasons.UNSUPPORTED_SCHEME)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
