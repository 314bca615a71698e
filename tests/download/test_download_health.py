"""Seeing trouble early: health judged from a finished summary and from a running partition."""

from __future__ import annotations

from dataclasses import replace

from download_helpers import download_shard, metadata

from clip_assets.download import shard_download as stage
from clip_assets.download.health import (
    HealthThresholds,
    HealthWatch,
    assess,
    assess_summary,
)
from clip_assets.download.summary import summarize
from clip_assets.offline import images
from clip_assets.offline.dns_server import DnsServer
from clip_assets.offline.image_server import ImageServer, image

LOW = HealthThresholds(min_success_rate=0.5, max_reason_share=0.2, min_rows=10)


def test_a_healthy_partition_has_no_problems() -> None:
    assert assess(100, 90, {"http_404": 8, "x_robots_tag:noai": 2}, LOW) == []


def test_one_dominating_group_and_a_low_rate_are_reported_with_advice() -> None:
    counts = {"dns_error": 30, "dns_not_found": 10, "dns_timeout": 5, "timeout": 10, "http_404": 5}
    problems = assess(100, 40, counts, LOW)
    assert [p.kind for p in problems] == ["low_success_rate", "dns_dominates"]
    assert "dns_servers" in problems[0].advice and "45% of rows" in problems[1].advice
    assert problems[1].share == 0.45


def test_opt_outs_lower_the_rate_but_never_dominate() -> None:
    problems = assess(100, 30, {"robots_txt": 60, "tdm_reservation": 10}, LOW)
    assert [p.kind for p in problems] == ["low_success_rate"]


def test_too_few_rows_are_not_judged() -> None:
    assert assess(9, 0, {"dns_error": 9}, LOW) == []


def test_a_running_partition_warns_once_as_soon_as_it_crosses(settings, monkeypatch) -> None:
    """Half the hosts do not exist: the watch sees it while rows still run, once."""
    monkeypatch.setattr(stage._Tracker, "interval_s", 0.0)
    with (
        DnsServer({"up.test": ["127.0.0.1"]}) as dns,
        ImageServer({"/a.jpg": image(images.jpeg(64, 64, 1))}) as srv,
    ):
        named = replace(
            settings, dns_servers=(dns.address,), allowed_hosts=("up.test",), concurrency=2
        )
        urls = [f"http://{'up' if i % 2 else f'gone{i}'}.test:{srv.port}/a.jpg" for i in range(40)]
        watch, warnings = HealthWatch(LOW), []

        def on_progress(progress: stage.DownloadProgress) -> None:
            warnings.extend((progress.done, p.kind) for p in watch.new(progress))

        table = download_shard(metadata(urls), named, on_progress=on_progress)
    kinds = [kind for _, kind in warnings]
    assert "dns_dominates" in kinds and len(kinds) == len(set(kinds))  # each once
    assert max(done for done, _ in warnings) < 40  # while the partition was still running
    summary = summarize(table)
    assert [p.kind for p in assess_summary(summary, LOW)] == ["dns_dominates"]
    assert summary["reasons"] == {"dns_not_found": 20}
