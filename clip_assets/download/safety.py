"""Which URLs we may fetch, and which addresses we connect to.

``parse_url`` refuses anything but http(s) URLs with a host; internationalised names (Unicode
or ``xn--``) are IDNA-encoded as every HTTP client sends them. ``Resolver.check`` looks the host
up (``name_lookup``: cached for the answer's TTL) and refuses it when any of its addresses is
private, loopback, link-local, multicast, reserved or unspecified (unless the settings allow
it); an IPv6 address that embeds an IPv4 one (IPv4-mapped, 6to4, NAT64, Teredo, ...) is judged
by the IPv4 address. ``GuardedBackend`` is the HTTP client's only way to open a TCP connection;
it checks again at connect time and connects only to an address that check approved, so a
second answer (DNS rebinding) is judged like the first. Both run before every connection,
including after each redirect. Nothing here opens a socket except
``GuardedBackend.connect_tcp``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import httpcore
import httpx

from clip_assets.download import reasons
from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.name_lookup import HostLookup
from clip_assets.download.network_stats import NetworkStats

# One label of an IDNA-encoded hostname (underscores occur in real image hosts).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Prefixes whose addresses carry an IPv4 address in their last 32 bits: NAT64 well-known and
# local-use (RFC 6052, 8215), IPv4-compatible (deprecated) and IPv4-translated (RFC 2765).
_EMBEDDING_V4 = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96")
)


@dataclass(frozen=True)
class Target:
    """A checked URL: ``url`` as given, ``host`` (lower case, IDNA) and ``port`` to resolve."""

    url: httpx.URL
    host: str
    port: int


def parse_url(url: str | None) -> Target | str:
    """A ``Target`` for an absolute http(s) URL, else the reason it is refused."""
    if url is None or not url.strip():
        return reasons.MISSING_URL
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):  # IDNAError is a ValueError
        return reasons.BAD_URL
    if parsed.scheme not in ("http", "https"):
        return reasons.UNSUPPORTED_SCHEME if parsed.scheme else reasons.BAD_URL
    try:
        parsed.host  # noqa: B018 -- decoding the IDNA form refuses invalid A-labels (xn--zz)
    except ValueError:
        return reasons.BAD_URL
    # The IDNA form, as DNS and TLS see it; a trailing dot names the same host.
    host = parsed.raw_host.decode("ascii").lower().removesuffix(".")
    if not host:
        return reasons.BAD_URL
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not (_is_ip(host) or _is_hostname(host)) or not 0 < port < 65536:
        return reasons.BAD_URL
    return Target(parsed, host, port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_hostname(host: str) -> bool:
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; an IPv6 address that embeds an IPv4
    address is public only when every IPv4 address in it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    if embedded:
        return all(_globally_routable(v4) for v4 in embedded)
    return _globally_routable(ip)


def _globally_routable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)  # the relay server and the client behind it
    if any(ip in net for net in _EMBEDDING_V4):  # :: and ::1 give 0.0.0.0/8: never public
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


class Resolver:
    """Looks hosts up and checks their addresses, for one event loop.

    ``check`` returns the addresses that may be connected to, ``pin`` the first of them, each
    with a reason instead when refused (``private_address``, ``dns_not_found``, ``dns_error``,
    ``dns_timeout``). ``stats`` receives the lookup counts.
    """

    def __init__(self, settings: DownloadSettings, stats: NetworkStats | None = None) -> None:
        self._settings = settings
        self._allowed = {h.lower().strip("[]") for h in settings.allowed_hosts}
        self._lookup = HostLookup(settings, stats if stats is not None else NetworkStats())

    async def pin(self, target: Target) -> tuple[str | None, str | None]:
        """``(ip, None)`` when ``target`` may be fetched, ``(None, reason)`` otherwise."""
        addresses, reason = await self.check(target)
        return (addresses[0], None) if addresses else (None, reason)

    async def check(self, target: Target) -> tuple[list[str], str | None]:
        """Every address of ``target`` when all may be connected to, else ``([], reason)``."""
        host = target.host
        addresses = [host.strip("[]")] if _is_ip(host.strip("[]")) else None
        if addresses is None:
            answer = await self._lookup.addresses(host)
            if isinstance(answer, str):
                return [], answer
            addresses = list(answer)
        trusted = self._settings.allow_private_addresses or host.strip("[]") in self._allowed
        if not trusted and not all(is_public(a) for a in addresses):
            return [], reasons.PRIVATE_ADDRESS
        return addresses, None


class RefusedAddress(httpcore.ConnectError):
    """Raised instead of connecting to an address the settings forbid."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses ``resolver`` approves.

    The HTTP client asks it for every new TCP connection; it checks the host again (from the
    lookup cache while the answer lives) and has ``inner`` (httpcore's own backend) connect
    only to an approved address, so the address connected to is always an address checked.
    """

    def __init__(
        self, resolver: Resolver, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

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
