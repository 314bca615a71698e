"""robots.txt and TDMRep against a real loopback server: what is fetched, and the rows' status."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from download_helpers import download_one, download_shard, metadata, retry_failed

from clip_assets.download.reasons import is_transient
from clip_assets.download.tdmrep import parse_tdmrep_json
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, hang, image, redirect, status

JPEG = images.jpeg(120, 90, 1)

ROBOTS = b"""\
User-agent: *
Disallow: /private/
Allow: /private/public-*.jpg$
Disallow: /*.gif$

User-agent: picky-bot
Disallow: /
"""


def robots(text: bytes) -> object:
    return image(text, "text/plain")


def site(robots_route: object | None) -> dict:
    paths = ["/a.jpg", "/private/x.jpg", "/private/public-1.jpg", "/private/public-1.jpgx"]
    routes = {p: image(JPEG) for p in [*paths, "/anim.gif"]}
    if robots_route is not None:
        routes["/robots.txt"] = robots_route
    return routes


@pytest.mark.parametrize(
    ("path", "status_", "reason"),
    [
        ("/a.jpg", "ok", None),
        ("/private/x.jpg", "opted_out", "robots_txt"),
        ("/private/public-1.jpg", "ok", None),  # Allow beats the shorter Disallow
        ("/private/public-1.jpgx", "opted_out", "robots_txt"),  # $ anchors the Allow
        ("/anim.gif", "opted_out", "robots_txt"),  # wildcard and $
    ],
)
def test_robots_rules_allow_and_disallow(settings, path, status_, reason) -> None:
    with ImageServer(site(robots(ROBOTS))) as srv:
        row = download_one(srv.url(path), settings)
        assert srv.hits[path] == (1 if status_ == "ok" else 0)  # disallowed: never requested
    assert (row["status"], row["reason"]) == (status_, reason)
    assert (row["image"] is None) == (status_ != "ok")


def test_our_token_gets_its_own_group_and_others_get_star(settings) -> None:
    """A group naming our token replaces ``*`` for us; other crawlers' groups do not apply."""
    text = b"User-agent: *\nDisallow: /\n\nUser-agent: clip-assets\nAllow: /\n"
    with ImageServer({"/a.jpg": image(JPEG), "/robots.txt": robots(text)}) as srv:
        ours = download_one(srv.url("/a.jpg"), settings)
        other = download_one(srv.url("/a.jpg"), replace(settings, user_agent_token="otherbot"))
    with ImageServer(site(robots(ROBOTS))) as srv:
        picky = download_one(srv.url("/a.jpg"), replace(settings, user_agent_token="picky-bot"))
    assert (ours["status"], other["reason"], picky["reason"]) == ("ok", "robots_txt", "robots_txt")


@pytest.mark.parametrize("code", [404, 403, 410])
def test_a_missing_robots_txt_allows_everything(settings, code: int) -> None:
    with ImageServer(site(status(code))) as srv:
        row = download_one(srv.url("/private/x.jpg"), settings)
    assert row["status"] == "ok"


def test_robots_txt_is_fetched_once_per_host_per_run(settings) -> None:
    with ImageServer(site(robots(ROBOTS))) as srv:
        urls = [srv.url(p) for p in ("/a.jpg", "/private/x.jpg", "/a.jpg?v=2")] * 5
        table = download_shard(metadata(urls), settings)
        assert srv.hits["/robots.txt"] == 1
        download_shard(metadata(urls), replace(settings, respect_robots_txt=False))
        assert srv.hits["/robots.txt"] == 1 and srv.hits["/private/x.jpg"] == 5
    assert table["status"].to_pylist() == ["ok", "opted_out", "ok"] * 5


@pytest.mark.parametrize(
    "route",
    [status(503), status(500), status(429), hang()],
    ids=["503", "500", "429", "timeout"],
)
def test_a_failing_robots_txt_keeps_us_away_for_the_run(settings, route) -> None:
    """The common crawler rule: no URL of the host is fetched; the rows say why and are
    retried later (not within the run: the answer is kept for it)."""
    fast = replace(settings, total_timeout_s=0.3)
    with ImageServer(site(route)) as srv:
        meta = metadata([srv.url("/a.jpg"), srv.url("/private/x.jpg")])
        first = download_shard(meta, fast)
        assert srv.hits["/robots.txt"] == 1 and srv.hits["/a.jpg"] == 0
        srv.routes["/robots.txt"] = robots(ROBOTS)
        retried = retry_failed(first, meta, fast)
    assert first["status"].to_pylist() == ["failed", "failed"]
    assert first["reason"].to_pylist() == ["robots_txt_unreachable"] * 2
    assert first["attempts"].to_pylist() == [1, 1] and is_transient("robots_txt_unreachable")
    assert retried["status"].to_pylist() == ["ok", "opted_out"]


def test_a_host_refusing_connections_is_robots_txt_unreachable(settings) -> None:
    with ImageServer() as srv:
        url = srv.url("/a.jpg")
    row = download_one(url, settings)
    assert (row["status"], row["reason"]) == ("failed", "robots_txt_unreachable")


def test_robots_txt_redirects_are_followed(settings) -> None:
    routes = site(redirect("/real-robots.txt", 301))
    routes["/real-robots.txt"] = robots(ROBOTS)
    with ImageServer(routes) as srv:
        row = download_one(srv.url("/private/x.jpg"), settings)
    assert row["reason"] == "robots_txt"


@pytest.mark.parametrize(
    ("value", "status_"), [("1", "opted_out"), (" 1 ", "opted_out"), ("0", "ok")]
)
def test_tdm_reservation_header(settings, value: str, status_: str) -> None:
    headers = {"tdm-reservation": value, "tdm-policy": "https://rights.example/policy.json"}
    with ImageServer({"/a.jpg": image(JPEG, **headers)}) as srv:
        row = download_one(srv.url("/a.jpg"), settings)
        ignored = download_one(srv.url("/a.jpg"), replace(settings, respect_opt_out=False))
    reason = "tdm_reservation" if status_ == "opted_out" else None
    assert (row["status"], row["reason"], row["image"] is None) == (status_, reason, bool(reason))
    assert ignored["status"] == "ok"


TDMREP = [
    {"location": "/", "tdm-reservation": 0},
    {"location": "/reserved/*", "tdm-reservation": 1, "tdm-policy": "https://x.example/p"},
    {"location": "/reserved/free-*.jpg$", "tdm-reservation": 0},
]


def test_tdmrep_json_is_read_when_enabled(settings) -> None:
    routes = {p: image(JPEG) for p in ("/a.jpg", "/reserved/b.jpg", "/reserved/free-1.jpg")}
    routes["/.well-known/tdmrep.json"] = image(json.dumps(TDMREP).encode(), "application/json")
    enabled = replace(settings, tdmrep_well_known=True)
    with ImageServer(routes) as srv:
        urls = [srv.url(p) for p in ("/a.jpg", "/reserved/b.jpg", "/reserved/free-1.jpg")]
        table = download_shard(metadata(urls), enabled)
        assert srv.hits["/reserved/b.jpg"] == 0 and srv.hits["/.well-known/tdmrep.json"] == 1
        plain = download_shard(metadata(urls), settings)
        assert srv.hits["/.well-known/tdmrep.json"] == 1  # off by default
    assert table["status"].to_pylist() == ["ok", "opted_out", "ok"]
    assert table["reason"].to_pylist() == [None, "tdm_reservation", None]
    assert plain["status"].to_pylist() == ["ok"] * 3


@pytest.mark.parametrize(
    ("body", "path", "reserved"),
    [
        (json.dumps(TDMREP).encode(), "/reserved/x.png", True),
        (json.dumps(TDMREP).encode(), "/reserved/free-2.jpg", False),
        (json.dumps(TDMREP).encode(), "/reserved/free-2.jpg?x", True),
        (json.dumps(TDMREP).encode(), "/other", False),
        (b"not json", "/reserved/x.png", False),
        (b'{"location": "/", "tdm-reservation": 1}', "/a", False),  # not an array
        (b'[{"location": "*.png", "tdm-reservation": 1}]', "/deep/a.png", True),
    ],
)
def test_tdmrep_json_rules(body: bytes, path: str, reserved: bool) -> None:
    assert parse_tdmrep_json(body).reserved(path) is reserved
