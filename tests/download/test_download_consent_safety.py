"""X-Robots-Tag opt-out and address safety, parsed and end to end on a loopback server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from download_helpers import download_one

from clip_assets.download.safety import (
    GuardedBackend,
    RefusedAddress,
    Resolver,
    is_public,
    parse_url,
)
from clip_assets.download.x_robots_tag import opt_out_directive
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, image, redirect

JPEG = images.jpeg(200, 200, 1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["noai"], "noai"),
        (["noimageai"], "noimageai"),
        (["noindex"], "noindex"),
        (["noimageindex"], "noimageindex"),
        (["nofollow, NoAI"], "noai"),
        (["none"], "none"),
        (["otherbot: noai"], None),
        (["clip-assets: noai"], "noai"),
        (["CLIP-Assets: noimageai, nofollow"], "noimageai"),
        (["otherbot: noindex", "nofollow"], None),
        (["otherbot: noindex", "clip-assets: noindex"], "noindex"),
        (["max-image-preview: large, noai"], "noai"),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], None),
        (["nofollow", "noarchive"], None),
        ([""], None),
    ],
)
def test_opt_out_directive(values: list[str], expected: str | None) -> None:
    assert opt_out_directive(values, "clip-assets") == expected


@pytest.mark.parametrize(
    ("header", "status", "reason"),
    [
        ("noai", "opted_out", "x_robots_tag:noai"),
        ("noimageindex", "opted_out", "x_robots_tag:noimageindex"),
        ("otherbot: noai", "ok", None),
        ("clip-assets: noai", "opted_out", "x_robots_tag:noai"),
    ],
)
def test_opted_out_images_are_not_downloaded(settings, header, status, reason) -> None:
    with ImageServer({"/a.jpg": image(JPEG, X_Robots_Tag=header)}) as srv:
        row = download_one(srv.url("/a.jpg"), settings)
    assert (row["status"], row["reason"]) == (status, reason)
    assert (row["image"] is None) == (status == "opted_out")


def test_opt_out_can_be_ignored_by_setting(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG, X_Robots_Tag="noai")}) as srv:
        row = download_one(srv.url("/a.jpg"), replace(settings, respect_opt_out=False))
    assert row["status"] == "ok"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "missing_url"),
        ("   ", "missing_url"),
        ("not a url", "bad_url"),
        ("http://", "bad_url"),
        ("http://exa mple.com/a.jpg", "bad_url"),
        ("http://example.com:99999/a.jpg", "bad_url"),
        ("ftp://example.com/a.jpg", "unsupported_scheme"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("data:image/png;base64,AAAA", "unsupported_scheme"),
    ],
)
def test_bad_urls(url: str | None, reason: str) -> None:
    assert parse_url(url) == reason


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/a.jpg", "http://169.254.169.254/latest/meta-data", "http://[::1]/"]
)
def test_private_literal_addresses_are_refused_before_connecting(settings, url: str) -> None:
    """A refused address never sees a connection: the check runs before any socket opens."""
    row = download_one(url, replace(settings, connect_timeout_s=0.2, total_timeout_s=0.2))
    assert (row["status"], row["reason"], row["attempts"]) == ("failed", "private_address", 1)


def test_hostname_resolving_to_loopback_is_never_connected_to(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        row = download_one(
            f"http://localhost:{srv.port}/a.jpg", replace(settings, allowed_hosts=())
        )
        assert srv.connections == 0 and srv.hits["/a.jpg"] == 0
    assert row["reason"] == "private_address"


def test_loopback_refused_unless_allowed(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        refused = download_one(srv.url("/a.jpg"), replace(settings, allowed_hosts=()))
        assert srv.connections == 0
        allowed = download_one(
            srv.url("/a.jpg"), replace(settings, allowed_hosts=(), allow_private_addresses=True)
        )
    assert (refused["reason"], allowed["status"]) == ("private_address", "ok")


def test_redirect_to_a_private_address_is_refused(settings) -> None:
    routes = {"/meta": redirect("http://169.254.169.254/latest/meta-data/")}
    with ImageServer(routes) as srv:
        srv.routes["/local"] = redirect(f"http://localhost:{srv.port}/meta")
        meta = download_one(srv.url("/meta"), settings)
        local = download_one(srv.url("/local"), settings)
        assert srv.hits["/meta"] == 1 and srv.hits["/local"] == 1
    assert (meta["reason"], local["reason"]) == ("private_address", "private_address")


def test_redirect_to_another_scheme_is_refused(settings) -> None:
    with ImageServer({"/r": redirect("file:///etc/passwd")}) as srv:
        assert download_one(srv.url("/r"), settings)["reason"] == "unsupported_scheme"


def test_guarded_backend_refuses_at_connect_time(settings) -> None:
    """The connect-time guard holds even for a caller that skips the pre-check."""

    async def connect() -> None:
        backend = GuardedBackend(Resolver(replace(settings, allowed_hosts=())))
        async with httpx.AsyncClient() as client:
            client._transport._pool._network_backend = backend
            await client.get("http://127.0.0.1:9/")

    with pytest.raises(httpx.ConnectError) as caught:
        asyncio.run(connect())
    assert isinstance(caught.value.__context__, RefusedAddress)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://bücher.example/a.jpg", "xn--bcher-kva.example"),
        ("http://xn--bcher-kva.example/a.jpg", "xn--bcher-kva.example"),
        ("http://XN--BCHER-KVA.Example./a.jpg", "xn--bcher-kva.example"),
        ("http://例え.テスト/a.jpg", "xn--r8jz45g.xn--zckzah"),
        ("http://img_cdn.example/a.jpg", "img_cdn.example"),
    ],
)
def test_internationalised_names_are_encoded_not_refused(url: str, host: str) -> None:
    assert parse_url(url).host == host


@pytest.mark.parametrize("url", ["http://xn--zz.example/", "http://a..b/", "http://-a.example/"])
def test_malformed_names_are_bad_urls(url: str) -> None:
    assert parse_url(url) == "bad_url"


def test_an_idn_host_is_fetched(settings, dns) -> None:
    dns.set("xn--bcher-kva.test", ["127.0.0.1"])
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        allowed = replace(settings, allowed_hosts=("xn--bcher-kva.test",))
        row = download_one(f"http://bücher.test:{srv.port}/a.jpg", allowed)
        assert srv.hits["/a.jpg"] == 1
    assert row["status"] == "ok"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:93.184.216.34", True),
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:5db8:d822::", True),  # 6to4 of 93.184.216.34
        ("64:ff9b::10.0.0.1", False),  # NAT64 well-known prefix
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::93.184.216.34", True),
        ("64:ff9b:1::a00:1", False),  # NAT64 local-use prefix
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo, client 192.0.2.45
        ("2001:0:4136:e378:8000:63bf:a2b2:2727", True),  # Teredo, client 93.77.216.216
        ("::10.0.0.1", False),  # IPv4-compatible (deprecated)
        ("::ffff:0:10.0.0.1", False),  # IPv4-translated
        ("::", False),
    ],
)
def test_ipv6_forms_embedding_ipv4_are_judged_by_it(address: str, public: bool) -> None:
    assert is_public(address) is public
