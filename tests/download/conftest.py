"""Fixtures for the images-stage tests.

Every test's lookups go to a DNS server of its own on 127.0.0.1 (``dns``): no query ever
leaves the machine, whatever names a test uses. Names it does not know are NXDOMAIN.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.offline.dns_server import DnsServer


@pytest.fixture(scope="session")
def dns() -> Iterator[DnsServer]:
    """A loopback DNS server knowing ``localhost``; tests add names with ``dns.set``."""
    with DnsServer({"localhost": ["127.0.0.1", "::1"]}) as server:
        yield server


@pytest.fixture
def settings(dns: DnsServer) -> DownloadSettings:
    """Loopback allowed, short time limits, near-zero backoff, in-process, our DNS server."""
    return DownloadSettings(
        allowed_hosts=("127.0.0.1",),
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
        total_timeout_s=3.0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        workers=0,
        dns_servers=(dns.address,),
        dns_timeout_s=0.5,
    )
