"""Name lookups against real DNS servers on 127.0.0.1: cache, TTLs, failures, failover,
rebinding, and the figures they leave in ``NetworkStats``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpcore
import httpx
import pytest
from download_helpers import download_one, download_shard, metadata

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.network_stats import NetworkStats
from clip_assets.download.safety import GuardedBackend, RefusedAddress, Resolver, parse_url
from clip_assets.offline import images
from clip_assets.offline.dns_server import DnsServer
from clip_assets.offline.image_server import ImageServer, image

JPEG = images.jpeg(120, 100, 1)


def checked(settings: DownloadSettings, hosts: list[str], pause_s: float = 0.0):
    """``Resolver.check`` of each host in turn on one loop (sleeping ``pause_s`` between);
    returns the answers and the stats."""
    stats = NetworkStats()

    async def run() -> list[tuple[list[str], str | None]]:
        resolver = Resolver(settings, stats)
        answers = []
        for host in hosts:
            answers.append(await resolver.check(parse_url(f"http://{host}/a.jpg")))
            await asyncio.sleep(pause_s)
        return answers

    return asyncio.run(run()), stats


def using(server: DnsServer, settings: DownloadSettings, *more: DnsServer) -> DownloadSettings:
    servers = (server.address, *(s.address for s in more))
    return replace(settings, dns_servers=servers, allow_private_addresses=True)


def test_a_and_aaaa_answers_ipv4_first(settings) -> None:
    zone = {"both.test": ["::1", "127.0.0.1"], "six.test": ["::1"], "four.test": ["127.0.0.3"]}
    with DnsServer(zone) as dns:
        answers, stats = checked(using(dns, settings), ["both.test", "six.test", "four.test"])
        assert dns.queries[("both.test", "A")] == dns.queries[("both.test", "AAAA")] == 1
    assert [a for a, _ in answers] == [["127.0.0.1", "::1"], ["::1"], ["127.0.0.3"]]
    assert (stats.dns_lookups, stats.dns_cache_hits) == (3, 0)


def test_answers_are_kept_for_their_ttl_between_the_floor_and_the_ceiling(settings) -> None:
    """TTL 0 is held up to the floor; a day-long TTL is cut at the ceiling."""
    floor = replace(settings, dns_min_ttl_s=0.3, dns_max_ttl_s=0.3)
    for ttl in (0, 86400):
        with DnsServer({"img.test": ["127.0.0.1"]}, ttl=ttl) as dns:
            _, stats = checked(using(dns, floor), ["img.test"] * 3)
            assert dns.asked("img.test") == 2  # A and AAAA once, then twice from the cache
            checked(using(dns, floor), ["img.test", "img.test"], pause_s=0.4)
            assert dns.asked("img.test") == 6  # a new loop asks; after 0.4 s it asks again
        assert (stats.dns_lookups, stats.dns_cache_hits, stats.dns_cache_hit_rate) == (1, 2, 2 / 3)


def test_nxdomain_is_cached_and_servfail_is_asked_again(settings) -> None:
    with DnsServer({"ok.test": ["127.0.0.1"]}, servfail=["broken.test"]) as dns:
        hosts = ["gone.test", "gone.test", "broken.test", "broken.test"]
        answers, stats = checked(using(dns, settings), hosts)
        # broken.test: two lookups of A and AAAA, each asked a second round after SERVFAIL.
        assert (dns.asked("gone.test"), dns.asked("broken.test")) == (2, 8)
    assert [reason for _, reason in answers] == ["dns_not_found"] * 2 + ["dns_error"] * 2
    assert stats.dns_failures == {"nxdomain": 1, "server_failure": 2}
    assert (stats.dns_lookups, stats.dns_cache_hits) == (3, 1)


def test_a_name_without_addresses_is_not_found(settings) -> None:
    with DnsServer({"empty.test": []}) as dns:
        answers, stats = checked(using(dns, settings), ["empty.test", "empty.test"])
        assert dns.asked("empty.test") == 2
    assert answers == [([], "dns_not_found")] * 2 and stats.dns_failures == {"no_address": 1}


def test_a_silent_server_is_a_dns_timeout(settings) -> None:
    fast = replace(settings, dns_timeout_s=0.1)
    with DnsServer(silent=["slow.test"]) as dns:
        answers, stats = checked(using(dns, fast), ["slow.test"])
    assert answers == [([], "dns_timeout")] and stats.dns_failures == {"timeout": 1}


@pytest.mark.parametrize("failure", ["servfail", "silent"])
def test_a_failing_server_is_passed_over_for_the_next(settings, failure: str) -> None:
    fast = replace(settings, dns_timeout_s=0.2)
    with (
        DnsServer(**{failure: ["img.test"]}) as first,
        DnsServer({"img.test": ["127.0.0.1"]}) as second,
    ):
        answers, stats = checked(using(first, fast, second), ["img.test"])
        assert first.asked("img.test") >= 2 and second.asked("img.test") == 2
    assert answers == [(["127.0.0.1"], None)] and not stats.dns_failures


def test_one_lookup_per_host_however_many_urls_wait(settings) -> None:
    with DnsServer({"img.test": ["127.0.0.1"]}) as dns:

        async def check_many() -> list[tuple[list[str], str | None]]:
            resolver = Resolver(using(dns, settings))
            targets = [parse_url(f"http://img.test/{i}.jpg") for i in range(20)]
            return await asyncio.gather(*(resolver.check(t) for t in targets))

        answers = asyncio.run(check_many())
        assert dns.asked("img.test") == 2
    assert answers == [(["127.0.0.1"], None)] * 20


def test_every_answer_is_checked_so_rebinding_is_refused(settings) -> None:
    """The host answers a public address, then (TTL 0, no floor) loopback: the connect-time
    check sees the second answer and refuses it. The inner backend connects to loopback only,
    so even a regression could not reach the public address."""

    class LoopbackOnly(httpcore.AnyIOBackend):
        async def connect_tcp(self, host, port, *args, **kwargs):
            assert host.startswith("127."), f"would have connected to {host}"
            return await super().connect_tcp(host, port, *args, **kwargs)

    strict = replace(settings, allowed_hosts=(), dns_min_ttl_s=0.0)
    with DnsServer({"rebind.test": ["93.184.216.34"]}, ttl=0) as dns:
        strict = replace(strict, dns_servers=(dns.address,))

        async def attack() -> tuple[tuple[list[str], str | None], BaseException]:
            resolver = Resolver(strict)
            first = await resolver.check(parse_url("http://rebind.test/a.jpg"))
            dns.set("rebind.test", ["127.0.0.1"])
            backend = GuardedBackend(resolver, inner=LoopbackOnly())
            with pytest.raises(RefusedAddress) as refused:
                await backend.connect_tcp("rebind.test", 9)
            return first, refused.value

        first, refused = asyncio.run(attack())
        assert dns.asked("rebind.test") == 4
    assert first == (["93.184.216.34"], None) and str(refused) == "private_address"


def test_guarded_backend_falls_back_to_the_next_checked_address(settings) -> None:
    """A host may publish an address that does not answer; the next one is tried."""
    with DnsServer({"two.test": ["127.0.0.2", "127.0.0.1"]}) as dns:  # nothing on .2

        async def fetch(url: str) -> int:
            backend = GuardedBackend(Resolver(using(dns, settings)))
            async with httpx.AsyncClient() as client:
                client._transport._pool._network_backend = backend
                return (await client.get(url)).status_code

        with ImageServer({"/a.jpg": image(JPEG)}) as srv:
            assert asyncio.run(fetch(f"http://two.test:{srv.port}/a.jpg")) == 200


@pytest.mark.parametrize(
    ("name", "reason", "attempts"),
    [("gone.test", "dns_not_found", 1), ("broken.test", "dns_error", 3)],
)
def test_dns_failures_in_the_images_table(settings, name, reason, attempts) -> None:
    """A name that does not exist is final; a failing server is asked again on retry."""
    with DnsServer(servfail=["broken.test"]) as dns:
        row = download_one(f"http://{name}/a.jpg", using(dns, settings))
        rounds = 2 if name == "broken.test" else 1  # SERVFAIL: every server asked twice
        assert dns.asked(name) == 2 * attempts * rounds  # A and AAAA per lookup
    assert (row["status"], row["reason"], row["attempts"]) == ("failed", reason, attempts)


def test_a_hostname_is_fetched_through_our_server(settings) -> None:
    with (
        DnsServer({"images.test": ["127.0.0.1"]}) as dns,
        ImageServer({"/a.jpg": image(JPEG)}) as srv,
    ):
        named = replace(settings, dns_servers=(dns.address,), allowed_hosts=("images.test",))
        row = download_one(f"http://images.test:{srv.port}/a.jpg", named)
        refused = download_one(
            f"http://images.test:{srv.port}/a.jpg", replace(named, allowed_hosts=())
        )
        assert srv.hits["/a.jpg"] == 1
    assert (row["status"], refused["reason"]) == ("ok", "private_address")


@pytest.mark.skipif(
    "localhost" not in Path("/etc/hosts").read_text(), reason="no localhost in /etc/hosts"
)
def test_the_system_resolver_reads_etc_hosts(settings) -> None:
    system = replace(settings, resolver="system", dns_servers=(), allow_private_addresses=True)
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        row = download_one(f"http://localhost:{srv.port}/a.jpg", system)
    assert row["status"] == "ok"


def test_dns_server_settings_are_validated() -> None:
    DownloadSettings(dns_servers=("127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1"))
    for bad in ("dns.google", "127.0.0.1:0", "1.2.3.4:x"):
        with pytest.raises(ValueError):
            DownloadSettings(dns_servers=(bad,))
    with pytest.raises(ValueError, match="resolver"):
        DownloadSettings(resolver="magic")


def test_a_share_of_failed_queries_is_retried_into_success(settings, tmp_path) -> None:
    """The test server fails 40% of queries at random: a URL's retries ask again."""
    zone = {f"h{i}.test": ["127.0.0.1"] for i in range(10)}
    with (
        DnsServer(zone, fail_share=0.4, seed=1) as dns,
        ImageServer({"/a.jpg": image(JPEG)}) as srv,
    ):
        urls = [f"http://h{i}.test:{srv.port}/a.jpg" for i in range(10)]
        patient = replace(using(dns, settings), retries=4)
        table = download_shard(metadata(urls), patient)
        assert sum(dns.queries.values()) > 20  # some were asked more than once
    assert table["status"].to_pylist() == ["ok"] * 10, table["reason"].to_pylist()
