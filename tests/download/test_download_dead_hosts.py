"""Hosts that die: the per-host breaker, a server killed mid-partition, and re-downloads that
must not lose images stored before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from download_helpers import download_shard, metadata, retry_failed

from clip_assets.download import shard_download as stage
from clip_assets.download.reasons import is_transient
from clip_assets.download.shard_download import download_shard_to_file, retry_failed_to_file
from clip_assets.download.summary import summarize
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, hang, image, slow, status

JPEG = images.jpeg(100, 80, 1)


@pytest.fixture
def sequential(settings):
    """One request at a time (so rows reach the host in order), no robots.txt in the way,
    no retries, a short time limit."""
    return replace(
        settings,
        per_host_concurrency=1,
        respect_robots_txt=False,
        retries=0,
        total_timeout_s=0.3,
        host_failure_limit=2,
    )


def test_the_breaker_opens_after_the_limit_and_sends_nothing_more(sequential) -> None:
    with ImageServer({f"/{i}.jpg": hang() for i in range(8)}) as srv:
        meta = metadata([srv.url(f"/{i}.jpg") for i in range(8)])
        table = download_shard(meta, sequential)
        assert sum(srv.hits.values()) == 2  # the limit; the other six never left
    assert table["reason"].to_pylist() == ["timeout"] * 2 + ["host_unreachable"] * 6
    assert set(table["status"].to_pylist()) == {"failed"} and is_transient("host_unreachable")
    assert table["attempts"].to_pylist() == [1] * 8


def test_a_host_that_never_answered_gets_only_limit_requests_at_once(sequential) -> None:
    """With 8 allowed in flight, a dead host still sees only ``host_failure_limit`` requests:
    until a host has answered, no more than that are sent to it at a time."""
    wide = replace(sequential, per_host_concurrency=8, host_failure_limit=3)
    with ImageServer({f"/{i}.jpg": hang() for i in range(8)}) as srv:
        table = download_shard(metadata([srv.url(f"/{i}.jpg") for i in range(8)]), wide)
        assert sum(srv.hits.values()) == 3
    with ImageServer({f"/{i}.jpg": slow(image(JPEG), 0.2) for i in range(8)}) as srv:
        patient = replace(wide, total_timeout_s=5.0)  # 0.2 s answers must not time out
        alive = download_shard(metadata([srv.url(f"/{i}.jpg") for i in range(8)]), patient)
    assert table["reason"].to_pylist() == ["timeout"] * 3 + ["host_unreachable"] * 5
    assert alive["status"].to_pylist() == ["ok"] * 8


def test_an_answer_closes_the_breaker(sequential) -> None:
    """Hang, hang, answer, hang, hang...: never two failures in a row past an answer, so with
    a limit of 3 nothing is cut short, while a limit of 2 opens on the first pair."""
    paths = ["/h1", "/h2", "/ok", "/h3", "/h4", "/gone", "/h5"]
    routes = {p: hang() for p in paths}
    routes["/ok"], routes["/gone"] = image(JPEG), status(404)  # a 404 is an answer too
    with ImageServer(routes) as srv:
        meta = metadata([srv.url(p) for p in paths])
        tolerant = download_shard(meta, replace(sequential, host_failure_limit=3))
        strict = download_shard(meta, sequential)
        off = download_shard(meta, replace(sequential, host_failure_limit=0))
    expected = ["timeout", "timeout", None, "timeout", "timeout", "http_404", "timeout"]
    assert tolerant["reason"].to_pylist() == expected
    assert strict["reason"].to_pylist() == ["timeout"] * 2 + ["host_unreachable"] * 5
    assert off["reason"].to_pylist() == tolerant["reason"].to_pylist()


def test_connect_errors_open_it_and_retry_failed_asks_again(sequential) -> None:
    with ImageServer() as srv:
        port = srv.port
    urls = [f"http://127.0.0.1:{port}/{i}.jpg" for i in range(6)]
    meta = metadata(urls)
    first = download_shard(meta, replace(sequential, retries=2))
    # Retries count too: a row retrying after the second refusal finds the breaker open.
    assert first["reason"].to_pylist() == ["host_unreachable"] * 6
    with ImageServer({f"/{i}.jpg": image(JPEG) for i in range(6)}, port=port) as srv:
        retried = retry_failed(first, meta, sequential)
        assert sum(srv.hits.values()) == 6
    assert retried["status"].to_pylist() == ["ok"] * 6


def test_breaker_and_dns_figures_reach_the_summary(sequential, tmp_path: Path) -> None:
    with ImageServer({f"/{i}.jpg": hang() for i in range(5)}) as srv:
        meta = metadata([srv.url(f"/{i}.jpg") for i in range(5)])
        stats = download_shard_to_file(meta, sequential, tmp_path / "images.parquet")
    summary = summarize(pq.read_table(tmp_path / "images.parquet"), 1.0, stats)
    assert (summary["hosts_unreachable"], summary["reasons"]) == (
        1,
        {"host_unreachable": 3, "timeout": 2},
    )
    assert (summary["dns_lookups"], summary["dns_failures"]) == (0, {})  # an IP literal


SERVE = """
import sys, threading
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, image
routes = {f"/{i}.jpg": image(images.jpeg(60 + i, 50, i)) for i in range(int(sys.argv[2]))}
with ImageServer(routes, latency_s=0.02, port=int(sys.argv[1])) as srv:
    print(srv.port, flush=True)
    threading.Event().wait()
"""


def serve_in_a_process(port: int, routes: int) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-c", SERVE, str(port), str(routes)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    return child, int(child.stdout.readline())


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_server_killed_mid_partition(settings, tmp_path, monkeypatch, workers) -> None:
    """Every row is accounted for once, as ok or a transient failure; retry_failed recovers
    the failures once the server is back on the same port."""
    monkeypatch.setattr(stage._Tracker, "interval_s", 0.0)
    settings = replace(settings, workers=workers, min_rows_per_worker=1, per_host_concurrency=4)
    n = 80
    child, port = serve_in_a_process(0, n)
    meta = metadata([f"http://127.0.0.1:{port}/{i}.jpg" for i in range(n)])
    target = tmp_path / "images.parquet"

    def kill_at_the_twentieth(progress: stage.DownloadProgress) -> None:
        if progress.done >= 20 and child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()

    try:
        download_shard_to_file(meta, settings, target, on_progress=kill_at_the_twentieth)
    finally:
        child.kill()
        child.wait()
    first = pq.read_table(target)
    assert first["uid"].to_pylist() == meta["uid"].to_pylist()
    failed = first.filter(pc.not_equal(first["status"], "ok"))
    assert 0 < failed.num_rows < n - 19
    assert all(is_transient(r) for r in failed["reason"].to_pylist()), set(failed["reason"])
    child, _ = serve_in_a_process(port, n)
    try:
        retry_failed_to_file(target, meta, settings, target)
    finally:
        child.kill()
        child.wait()
    assert pq.read_table(target)["status"].to_pylist() == ["ok"] * n


def test_a_redownload_keeps_stored_images_when_hosts_are_down(settings, tmp_path) -> None:
    routes = {f"/{i}.jpg": image(images.jpeg(70, 60, i)) for i in range(6)}
    routes["/gone"] = status(404)
    target = tmp_path / "images.parquet"
    with ImageServer(routes) as srv:
        port = srv.port
        urls = [srv.url(f"/{i}.jpg") for i in range(6)] + [srv.url("/gone"), None]
        meta = metadata(urls)
        download_shard_to_file(meta, settings, target, row_group_rows=3)
    before = pq.read_table(target)
    assert before["status"].to_pylist() == ["ok"] * 6 + ["failed", "failed"]
    down = replace(settings, retries=0)
    # The server is gone: a plain download would turn every ok row into a failure ...
    lost = download_shard(meta, down)
    assert lost["status"].to_pylist() == ["failed"] * 8
    # ... given the previous file, every stored image stays, byte for byte.
    download_shard_to_file(meta, down, target, previous=target, row_group_rows=2)
    after = pq.read_table(target)
    assert after.slice(0, 6).equals(before.slice(0, 6))
    assert after["reason"].to_pylist()[6:] == ["robots_txt_unreachable", "missing_url"]
    # A host that now opts out is honoured: its stored image goes.
    routes["/0.jpg"] = image(images.jpeg(70, 60, 0), X_Robots_Tag="noai")
    with ImageServer(routes, port=port):
        download_shard_to_file(meta, settings, target, previous=target)
    again = pq.read_table(target)
    assert again["status"].to_pylist() == ["opted_out"] + ["ok"] * 5 + ["failed", "failed"]
    assert list(tmp_path.iterdir()) == [target]
