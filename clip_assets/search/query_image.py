"""Fetch a query image from a URL with the downloader's limits.

The fetch is size-capped, every redirect hop is checked, and the whole fetch (every hop, from
the first connection to the last byte) has a deadline, so a server that drips a byte now and
then cannot hold a request for longer than ``DownloadSettings.total_timeout_s``.

A search service that fetches any URL it is given can be turned against the network it runs in
(server-side request forgery). Each hop goes through the downloader's own checks
(``clip_assets.download.safety``): http(s) only, and a host that resolves to public addresses
unless private ones are allowed (tests, a local demo). Connections go through the downloader's
``GuardedBackend``, so the address connected to is the address checked (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import httpcore

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.safety import GuardedBackend, Resolver, Target, parse_url

#: The downloader's limits, applied to query images as well.
DOWNLOAD_LIMITS = DownloadSettings()
MAX_IMAGE_BYTES = DOWNLOAD_LIMITS.max_body_bytes
MAX_REDIRECTS = DOWNLOAD_LIMITS.max_redirects

_REDIRECTS = {301, 302, 303, 307, 308}
_HEADERS = [(b"User-Agent", b"clip-assets-search"), (b"Accept", b"image/*")]
_NETWORK_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


class FetchError(ValueError):
    """The URL could not be fetched as a query image; the message says why."""


async def fetch_image_async(
    url: str,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    timeout_s: float = DOWNLOAD_LIMITS.read_timeout_s,
    deadline_s: float = DOWNLOAD_LIMITS.total_timeout_s,
    allow_private: bool = False,
) -> bytes:
    """The body of ``url``; raises ``FetchError`` for refused, failing, oversize or overlong
    fetches. ``timeout_s`` bounds each connect and each silence while reading; ``deadline_s``
    bounds the whole fetch, redirects included."""
    fetch = _fetch(url, max_bytes, timeout_s, allow_private)
    try:
        return await asyncio.wait_for(fetch, deadline_s)
    except asyncio.TimeoutError as error:
        raise FetchError(f"fetching {url} took longer than {deadline_s:g} s") from error


async def _fetch(url: str, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    resolver = Resolver(DownloadSettings(allow_private_addresses=allow_private))
    timeouts = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout_s)}
    async with httpcore.AsyncConnectionPool(network_backend=GuardedBackend(resolver)) as pool:
        for _ in range(MAX_REDIRECTS + 1):
            target = await _checked(resolver, url)
            try:
                async with pool.stream(
                    "GET", str(target.url), headers=_HEADERS, extensions=timeouts
                ) as response:
                    location = _header(response, b"location")
                    if response.status in _REDIRECTS and location:
                        url = urljoin(str(target.url), location)
                        continue
                    if response.status != 200:
                        raise FetchError(f"{url} answered HTTP {response.status}")
                    return await _read_capped(response, max_bytes, url)
            except _NETWORK_ERRORS as error:
                raise FetchError(
                    f"fetching {url} failed: {error or type(error).__name__}"
                ) from error
            except (AttributeError, OSError) as error:
                # A connection reset between connect and first use surfaces from anyio's
                # socket wrapper as these rather than as httpcore's errors: still a failed fetch.
                raise FetchError(f"fetching {url} failed: {type(error).__name__}") from error
    raise FetchError(f"more than {MAX_REDIRECTS} redirects from {url}")


def fetch_image(url: str, **kwargs: float | int | bool) -> bytes:
    """``fetch_image_async`` for synchronous callers (the CLI, the Python API)."""

    def fetch() -> bytes:
        return asyncio.run(fetch_image_async(url, **kwargs))  # type: ignore[arg-type]

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fetch()
    # Called from inside an event loop (a notebook, say): asyncio.run needs a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fetch).result()


async def _checked(resolver: Resolver, url: str) -> Target:
    target = parse_url(url)
    if isinstance(target, str):
        raise FetchError(f"refused to fetch {url!r}: {target}")
    _, reason = await resolver.pin(target)
    if reason is not None:
        raise FetchError(f"refused to fetch {url}: {reason}")
    return target


def _header(response: httpcore.Response, name: bytes) -> str:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _read_capped(response: httpcore.Response, max_bytes: int, url: str) -> bytes:
    declared = _header(response, b"content-length")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url} is {declared} bytes, over the {max_bytes}-byte limit")
    body = bytearray()
    async for chunk in response.aiter_stream():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"{url} is over the {max_bytes}-byte limit")
    return bytes(body)
