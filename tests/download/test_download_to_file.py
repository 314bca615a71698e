"""The file-writing entry points: same rows (and summary) as the table ones, atomic, bounded
memory."""

from __future__ import annotations

import io
import tracemalloc
from dataclasses import replace

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from download_helpers import download_shard, metadata, retry_failed
from PIL import Image

from clip_assets.download import shard_download as stage
from clip_assets.download.shard_download import download_shard_to_file, retry_failed_to_file
from clip_assets.download.summary import stored_summary, summarize, summarize_file
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, flaky, hang, image, slow, status


def noise_jpeg(seed: int, side: int = 210) -> bytes:
    """~50 KB of JPEG that stays ~50 KB when re-encoded: noise does not compress."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def mixed_routes() -> dict:
    routes = {f"/{i}.jpg": image(images.jpeg(70 + i, 50, i)) for i in range(9)}
    routes["/gone"] = status(404)
    routes["/page"] = image(b"<html>", "text/html")
    return routes


@pytest.mark.parametrize("workers", [0, 2])
def test_file_holds_exactly_the_rows_download_shard_returns(settings, tmp_path, workers) -> None:
    settings = replace(settings, workers=workers, min_rows_per_worker=1)
    with ImageServer(mixed_routes()) as srv:
        urls = [srv.url(f"/{i % 9}.jpg") for i in range(20)]
        urls[3], urls[7], urls[11] = srv.url("/gone"), None, srv.url("/page")
        meta = metadata(urls)
        table = download_shard(meta, settings)
        download_shard_to_file(meta, settings, tmp_path / "images.parquet", row_group_rows=3)
    written = pq.ParquetFile(tmp_path / "images.parquet")
    assert written.read().equals(table)
    groups = [written.metadata.row_group(g).num_rows for g in range(written.num_row_groups)]
    assert groups == [3] * 6 + [2]  # and a reorder window of 12 rows: workers wait for it
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"
    assert table["reason"].to_pylist()[3:12:4] == ["http_404", "missing_url", "not_an_image"]
    assert list(tmp_path.iterdir()) == [tmp_path / "images.parquet"]
    assert summarize_file(tmp_path / "images.parquet", 2.0) == summarize(table, 2.0)


def test_empty_shard_writes_an_empty_file(settings, tmp_path) -> None:
    download_shard_to_file(metadata([]), settings, tmp_path / "empty.parquet")
    assert pq.read_table(tmp_path / "empty.parquet").equals(download_shard(metadata([]), settings))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failure_midway_leaves_the_old_file_and_no_temp_file(
    settings, tmp_path, monkeypatch, workers
) -> None:
    monkeypatch.setattr(stage._Tracker, "interval_s", 0.0)  # report after every row
    settings = replace(settings, workers=workers, min_rows_per_worker=1)
    target = tmp_path / "images.parquet"
    target.write_bytes(b"the previous materialisation")
    seen = []

    def fail_from_the_fifth(progress: stage.DownloadProgress) -> None:
        seen.append(progress.done)
        if progress.done >= 5:
            raise OSError("No space left on device")  # as a row group write could

    with ImageServer(mixed_routes()) as srv:
        meta = metadata([srv.url(f"/{i % 9}.jpg") for i in range(40)])
        with pytest.raises(OSError, match="No space"):
            download_shard_to_file(
                meta, settings, target, on_progress=fail_from_the_fifth, row_group_rows=1
            )
    # The first failure stops the shard: no more rows are downloaded after it.
    assert seen[:5] == [1, 2, 3, 4, 5] and len(seen) < 40
    assert target.read_bytes() == b"the previous materialisation"
    assert list(tmp_path.iterdir()) == [target]


def test_retry_failed_to_file_merges_transient_failures_in_place(settings, tmp_path) -> None:
    routes = {
        "/ok.jpg": image(images.jpeg(90, 60, 1)),
        "/gone": status(404),
        "/busy": flaky(image(images.jpeg(100, 100, 2)), times=1, code=503),
        "/flaky": flaky(image(images.jpeg(120, 100, 3)), times=1, code=429),
    }
    once = replace(settings, retries=0)
    target = tmp_path / "images.parquet"
    with ImageServer(routes) as srv:
        paths = ["/ok.jpg", "/busy", "/gone", "/ok.jpg", "/flaky", "/ok.jpg", "/gone"]
        meta = metadata([srv.url(p) for p in paths] + [None])
        download_shard_to_file(meta, once, target, row_group_rows=3)
        first = pq.read_table(target)
        retry_failed_to_file(target, meta, once, target, row_group_rows=2)
        hits = {"/ok.jpg": 3, "/busy": 2, "/gone": 2, "/flaky": 2, "/robots.txt": 2}
        assert dict(srv.hits) == hits  # robots.txt once per run
    merged = pq.read_table(target)
    statuses = ["ok", "ok", "failed", "ok", "ok", "ok", "failed", "failed"]
    assert merged["status"].to_pylist() == statuses
    assert merged["attempts"].to_pylist() == [1, 2, 1, 1, 2, 1, 1, 0]
    for i in (0, 2, 3, 5, 6, 7):
        assert merged.slice(i, 1).equals(first.slice(i, 1))
    assert list(tmp_path.iterdir()) == [target]


def test_footer_keeps_the_download_time_and_a_retry_adds_its_own(settings, tmp_path) -> None:
    """Throughput can be read back from the stored file's footer alone (the release's report
    does), with the same counts as the rows give."""
    once = replace(settings, retries=0)
    routes = {
        "/ok.jpg": slow(image(images.jpeg(90, 60, 1)), 0.3),
        "/busy": slow(flaky(image(images.jpeg(100, 100, 2)), times=1, code=503), 0.2),
    }
    target = tmp_path / "images.parquet"
    with ImageServer(routes) as srv:
        meta = metadata([srv.url("/ok.jpg"), srv.url("/busy")])
        download_shard_to_file(meta, once, target)
        first = stored_summary(pq.read_metadata(target).metadata)
        retry_failed_to_file(target, meta, once, target)
    assert first is not None and first["elapsed_s"] >= 0.3 and first["ok"] == 1
    assert first["images_per_s"] == pytest.approx(1 / first["elapsed_s"])
    retried = stored_summary(pq.read_metadata(target).metadata)
    assert retried is not None and retried["elapsed_s"] >= first["elapsed_s"] + 0.2
    assert retried == summarize_file(target, retried["elapsed_s"])


def test_retry_failed_to_file_matches_retry_failed(settings, tmp_path) -> None:
    once = replace(settings, retries=0)
    routes = {f"/{i}.jpg": flaky(image(images.jpeg(60, 60 + i, i)), times=2) for i in range(5)}
    routes["/ok.jpg"] = image(images.jpeg(60, 60, 9))
    with ImageServer(routes) as srv:
        meta = metadata([srv.url(f"/{i}.jpg") for i in range(5)] + [srv.url("/ok.jpg")] * 4)
        first = download_shard(meta, once)  # every /<i>.jpg answers 503 twice
        download_shard_to_file(meta, once, tmp_path / "first.parquet")
        expected = retry_failed(first, meta, once)
        retry_failed_to_file(tmp_path / "first.parquet", meta, once, tmp_path / "retried.parquet")
    assert expected["status"].to_pylist()[:5] == ["ok"] * 5
    assert pq.read_table(tmp_path / "retried.parquet").equals(expected)


def test_retry_failed_to_file_with_nothing_to_retry(settings, tmp_path) -> None:
    meta = metadata([None, "ftp://x/y"])
    download_shard_to_file(meta, settings, tmp_path / "a.parquet")
    before = (tmp_path / "a.parquet").stat()
    retry_failed_to_file(tmp_path / "a.parquet", meta, settings, tmp_path / "a.parquet")
    retry_failed_to_file(tmp_path / "a.parquet", meta, settings, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").stat().st_mtime_ns == before.st_mtime_ns
    assert pq.read_table(tmp_path / "b.parquet").equals(pq.read_table(tmp_path / "a.parquet"))
    with pytest.raises(ValueError, match="does not match"):
        retry_failed_to_file(tmp_path / "a.parquet", metadata([None]), settings, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_memory_stays_bounded_behind_a_slow_first_row(settings, tmp_path) -> None:
    """Row 0 answers last, so every other row finishes out of order; only the reorder window
    (4 row groups) and one row group may wait in memory, not the partition (~50 MB here)."""
    bodies = [noise_jpeg(seed) for seed in range(4)]
    routes = {f"/{i}.jpg": image(bodies[i % 4]) for i in range(1, 1000)}
    routes["/0.jpg"] = slow(image(bodies[0]), 1.0)
    small = replace(settings, resize_mode="no", concurrency=8, per_host_concurrency=8)
    with ImageServer(routes) as srv:
        meta = metadata([srv.url(f"/{i}.jpg") for i in range(1000)])
        tracemalloc.start()
        try:
            download_shard_to_file(meta, small, tmp_path / "images.parquet", row_group_rows=8)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    written = pq.read_table(tmp_path / "images.parquet", columns=["status", "image"])
    assert written["status"].to_pylist() == ["ok"] * 1000
    image_bytes = pc.sum(pc.binary_length(written["image"])).as_py()
    assert image_bytes > 40e6
    assert peak < image_bytes / 8


def test_a_timed_out_row_holds_no_later_row_and_gets_its_retries_after(
    settings, tmp_path, monkeypatch
) -> None:
    """Row 0 never answers. With a reorder window of 4 rows, retrying it in place would hold
    row 5 onwards through three time-outs; instead every row is tried once first, and row 0
    gets its two retries after, merged into the file in its place."""
    monkeypatch.setattr(stage._Tracker, "interval_s", 0.0)  # report after every row
    routes = {f"/{i}.jpg": image(images.jpeg(40, 30, i)) for i in range(1, 30)}
    routes["/0.jpg"] = hang()
    patient = replace(settings, total_timeout_s=0.3, retries=2, host_failure_limit=0)
    tries_when_all_were_done = []

    with ImageServer(routes) as srv:

        def note(progress: stage.DownloadProgress) -> None:
            if progress.done == progress.total and not tries_when_all_were_done:
                tries_when_all_were_done.append(srv.hits["/0.jpg"])

        meta = metadata([srv.url(f"/{i}.jpg") for i in range(30)])
        target = tmp_path / "images.parquet"
        download_shard_to_file(meta, patient, target, on_progress=note, row_group_rows=1)
        assert srv.hits["/0.jpg"] == 3
    assert tries_when_all_were_done == [1]
    written = pq.read_table(target)
    assert written["uid"].to_pylist() == meta["uid"].to_pylist()
    assert written["status"].to_pylist() == ["failed"] + ["ok"] * 29
    assert (written["reason"][0].as_py(), written["attempts"][0].as_py()) == ("timeout", 3)
    assert list(tmp_path.iterdir()) == [target]


def test_written_file_gets_the_mode_the_umask_gives(settings, tmp_path, umask) -> None:
    with ImageServer(mixed_routes()) as srv:
        meta = metadata([srv.url("/1.jpg"), srv.url("/gone")])
        download_shard_to_file(meta, settings, tmp_path / "images.parquet")
        retry_failed_to_file(tmp_path / "images.parquet", meta, settings, tmp_path / "retried")
    for name in ("images.parquet", "retried"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
