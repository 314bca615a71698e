"""Fetching against a real loopback server: statuses, reasons, retries, limits, redirects."""

from __future__ import annotations

import time
from dataclasses import replace

from download_helpers import download_one, download_shard, metadata

from clip_assets.offline import images
from clip_assets.offline.image_server import (
    ImageServer,
    drip,
    flaky,
    hang,
    huge,
    image,
    redirect,
    slow,
    status,
)

JPEG = images.jpeg(320, 240, 1)


def test_ok_row_has_every_column(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        row = download_one(srv.url("/a.jpg"), settings)
    assert row["status"] == "ok" and row["reason"] is None
    assert (row["http_status"], row["attempts"], row["bytes"]) == (200, 1, len(JPEG))
    assert (row["width"], row["height"], row["original_width"], row["original_height"]) == (
        341,
        256,
        320,
        240,
    )
    assert row["image"][:2] == b"\xff\xd8" and len(row["sha256"]) == 64


def test_404_is_never_retried(settings) -> None:
    with ImageServer({"/gone": status(404)}) as srv:
        row = download_one(srv.url("/gone"), settings)
        assert srv.hits["/gone"] == 1
    assert (row["status"], row["reason"], row["http_status"], row["attempts"]) == (
        "failed",
        "http_404",
        404,
        1,
    )


def test_503_then_success_is_retried_with_retry_after(settings) -> None:
    routes = {"/busy": flaky(image(JPEG), times=2, code=503, retry_after="0")}
    with ImageServer(routes) as srv:
        row = download_one(srv.url("/busy"), settings)
        assert srv.hits["/busy"] == 3
    assert (row["status"], row["attempts"]) == ("ok", 3)


def test_429_retry_after_is_honoured(settings) -> None:
    with ImageServer({"/limited": flaky(image(JPEG), 1, 429, retry_after="1")}) as srv:
        start = time.monotonic()
        row = download_one(srv.url("/limited"), settings)
        waited = time.monotonic() - start
        assert srv.hits["/limited"] == 2
    assert row["status"] == "ok" and waited >= 1.0


def test_retries_run_out(settings) -> None:
    with ImageServer({"/down": status(500)}) as srv:
        row = download_one(srv.url("/down"), replace(settings, retries=3))
        assert srv.hits["/down"] == 4
    assert (row["reason"], row["attempts"]) == ("http_500", 4)


def test_retry_after_beyond_the_cap_is_left_for_a_later_run(settings) -> None:
    with ImageServer({"/later": status(503, retry_after="3600")}) as srv:
        row = download_one(srv.url("/later"), settings)
        assert srv.hits["/later"] == 1
    assert (row["reason"], row["attempts"]) == ("http_503", 1)


def test_huge_announced_body_is_refused_without_reading_it(settings) -> None:
    size = 500_000_000
    with ImageServer({"/big": huge(size)}) as srv:
        row = download_one(srv.url("/big"), replace(settings, max_body_bytes=1_000_000))
        time.sleep(0.2)  # let the server notice the hang-up
        sent = srv.bytes_sent["/big"]
    assert (row["status"], row["reason"]) == ("failed", "too_large")
    assert sent < 20_000_000  # socket buffers only, not the body


def test_huge_unannounced_body_is_cut_off_at_the_limit(settings) -> None:
    size = 500_000_000
    with ImageServer({"/stream": huge(size, announce=False)}) as srv:
        start = time.monotonic()
        row = download_one(srv.url("/stream"), replace(settings, max_body_bytes=2_000_000))
        elapsed = time.monotonic() - start
        time.sleep(0.2)
        sent = srv.bytes_sent["/stream"]
    assert row["reason"] == "too_large"
    assert sent < 25_000_000 and elapsed < 5.0


def test_drip_feeding_server_is_cut_off_at_the_total_limit(settings) -> None:
    fast = replace(settings, total_timeout_s=0.6, read_timeout_s=0.5, retries=0)
    with ImageServer({"/drip": drip(image(JPEG), interval_s=0.05, chunk=8)}) as srv:
        start = time.monotonic()
        row = download_one(srv.url("/drip"), fast)
        elapsed = time.monotonic() - start
    assert (row["status"], row["reason"]) == ("failed", "timeout")
    assert 0.55 < elapsed < 2.5  # cut at 0.6 s; the whole body would take minutes


def test_never_answering_server_times_out_and_is_retried(settings) -> None:
    fast = replace(settings, total_timeout_s=0.3, retries=1)
    with ImageServer({"/hang": hang()}) as srv:
        row = download_one(srv.url("/hang"), fast)
        assert srv.hits["/hang"] == 2
    assert (row["reason"], row["attempts"]) == ("timeout", 2)


def test_slow_server_within_the_limit_succeeds(settings) -> None:
    with ImageServer({"/slow": slow(image(JPEG), 0.3)}) as srv:
        assert download_one(srv.url("/slow"), settings)["status"] == "ok"


def test_connection_refused_is_a_connect_error(settings) -> None:
    """(With robots.txt on, the robots.txt request fails first: see test_download_site_rules.)"""
    with ImageServer() as srv:
        url = srv.url("/x.jpg")
    row = download_one(url, replace(settings, retries=0, respect_robots_txt=False))
    assert row["reason"] == "connect_error"


def test_redirects_are_followed_relative_and_absolute(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG), "/rel": redirect("/a.jpg", 301)}) as srv:
        srv.routes["/abs"] = redirect(srv.url("/rel"), 307)
        row = download_one(srv.url("/abs"), settings)
        assert (srv.hits["/abs"], srv.hits["/rel"], srv.hits["/a.jpg"]) == (1, 1, 1)
    assert row["status"] == "ok"


def test_redirect_loop_is_capped(settings) -> None:
    with ImageServer({"/loop": redirect("/loop")}) as srv:
        row = download_one(srv.url("/loop"), replace(settings, max_redirects=3))
        assert srv.hits["/loop"] == 4
    assert (row["status"], row["reason"]) == ("failed", "too_many_redirects")


def test_redirect_without_location(settings) -> None:
    with ImageServer({"/bad": status(302)}) as srv:
        assert download_one(srv.url("/bad"), settings)["reason"] == "bad_redirect"


def test_not_an_image_and_truncated_image(settings) -> None:
    routes = {
        "/page": image(b"<html>hello</html>", "text/html"),
        "/cut": image(images.truncated(images.jpeg(400, 400, 2))),
    }
    with ImageServer(routes) as srv:
        table = download_shard(metadata([srv.url("/page"), srv.url("/cut")]), settings)
    assert table["reason"].to_pylist() == ["not_an_image", "truncated_image"]
    assert table["status"].to_pylist() == ["failed", "failed"]


def test_user_agent_names_the_token_and_contact(settings) -> None:
    named = replace(settings, user_agent_token="acme-bot", contact_url="https://acme.test/bot")
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        download_one(srv.url("/a.jpg"), named)
        agent = srv.user_agents[0]
    assert "acme-bot/" in agent and "+https://acme.test/bot" in agent


def test_per_host_limit_bounds_parallel_requests(settings) -> None:
    routes = {f"/{i}.jpg": slow(image(JPEG), 0.2) for i in range(8)}
    limited = replace(settings, per_host_concurrency=2)
    with ImageServer(routes) as srv:
        start = time.monotonic()
        table = download_shard(metadata([srv.url(f"/{i}.jpg") for i in range(8)]), limited)
        elapsed = time.monotonic() - start
    assert table["status"].to_pylist() == ["ok"] * 8
    assert elapsed >= 0.8  # 8 requests, 2 at a time, 0.2 s each
