"""The public entry points: one row per input row, hash policy, retry_failed, processes, summary."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pyarrow as pa
from download_helpers import download_one, download_shard, metadata, retry_failed

from clip_assets.download.reasons import TRANSIENT_REASONS, is_transient
from clip_assets.download.shard_download import DownloadProgress
from clip_assets.download.summary import summarize
from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, flaky, image, status
from clip_assets.schemas import IMAGES_SCHEMA

JPEG = images.jpeg(300, 200, 1)
SHA = hashlib.sha256(JPEG).hexdigest()


def test_one_row_per_input_row_in_order(settings) -> None:
    routes = {f"/{i}.jpg": image(images.jpeg(64 + i, 64, i)) for i in range(6)}
    routes["/gone"] = status(404)
    with ImageServer(routes) as srv:
        urls = [srv.url("/3.jpg"), None, srv.url("/gone"), "", srv.url("/0.jpg"), "x:y"]
        urls += [srv.url("/3.jpg"), srv.url("/5.jpg")]
        meta = metadata(urls)
        table = download_shard(meta, settings)
    assert table.schema == IMAGES_SCHEMA
    assert table["uid"].to_pylist() == meta["uid"].to_pylist()
    assert table["url"].to_pylist() == urls
    assert table["reason"].to_pylist() == [
        None,
        "missing_url",
        "http_404",
        "missing_url",
        None,
        "unsupported_scheme",
        None,
        None,
    ]
    assert table["original_width"].to_pylist()[::4] == [67, 64]


def test_empty_shard(settings) -> None:
    table = download_shard(metadata([]), settings)
    assert table.num_rows == 0 and table.schema == IMAGES_SCHEMA


def test_hash_policies(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG)}) as srv:
        url = srv.url("/a.jpg")
        good = download_one(url, settings, sha256=SHA.upper())
        flagged = download_one(url, settings, sha256="0" * 64)
        dropped = download_one(url, replace(settings, hash_policy="drop"), sha256="0" * 64)
        ignored = download_one(url, replace(settings, hash_policy="ignore"), sha256="0" * 64)
        unknown = download_one(url, settings, sha256=None)
    assert (good["status"], good["sha256_ok"], good["sha256"]) == ("ok", True, SHA)
    assert (flagged["status"], flagged["reason"], flagged["sha256_ok"]) == (
        "hash_mismatch",
        "sha256_mismatch",
        False,
    )
    assert flagged["image"] is not None and dropped["image"] is None
    assert (dropped["status"], dropped["reason"]) == ("hash_mismatch", "sha256_mismatch")
    assert (ignored["status"], ignored["sha256_ok"]) == ("ok", None)
    assert (unknown["status"], unknown["sha256_ok"]) == ("ok", None)


def test_retry_failed_redownloads_only_transient_failures(settings) -> None:
    routes = {
        "/ok.jpg": image(JPEG),
        "/gone": status(404),
        "/page": image(b"<html>", "text/html"),
        "/busy": flaky(image(images.jpeg(100, 100, 2)), times=1, code=503),
        "/flaky": flaky(image(images.jpeg(120, 100, 3)), times=1, code=429),
    }
    once = replace(settings, retries=0)
    with ImageServer(routes) as srv:
        urls = [srv.url(p) for p in ("/ok.jpg", "/gone", "/busy", "/page", "/flaky")] + [None]
        meta = metadata(urls)
        first = download_shard(meta, once)
        assert first["reason"].to_pylist() == [
            None,
            "http_404",
            "http_503",
            "not_an_image",
            "http_429",
            "missing_url",
        ]
        merged = retry_failed(first, meta, once)
        # robots.txt once per run: the download and the retry.
        assert dict(srv.hits) == {
            "/ok.jpg": 1,
            "/gone": 1,
            "/busy": 2,
            "/page": 1,
            "/flaky": 2,
            "/robots.txt": 2,
        }
    assert merged.schema == IMAGES_SCHEMA
    assert merged["status"].to_pylist() == ["ok", "failed", "ok", "failed", "ok", "failed"]
    assert merged["attempts"].to_pylist() == [1, 1, 2, 1, 2, 0]
    for i in (0, 1, 3, 5):
        assert merged.slice(i, 1).equals(first.slice(i, 1))


def test_retry_failed_with_nothing_to_retry_returns_the_table(settings) -> None:
    first = download_shard(metadata([None, "ftp://x/y"]), settings)
    assert retry_failed(first, metadata([None, "ftp://x/y"]), settings) is first


def test_transient_reasons() -> None:
    assert {"timeout", "connect_error", "http_429", "http_503"} <= TRANSIENT_REASONS
    assert not any(is_transient(r) for r in ("http_404", "not_an_image", "private_address", None))


def test_worker_processes_give_the_same_rows_as_in_process(settings) -> None:
    routes = {f"/{i}.jpg": image(images.jpeg(80 + i, 60, i)) for i in range(12)}
    routes["/gone"] = status(404)
    with ImageServer(routes) as srv:
        urls = [srv.url(f"/{i}.jpg") for i in range(12)] + [srv.url("/gone"), None]
        meta = metadata(urls)
        inline = download_shard(meta, settings)
        progress: list[DownloadProgress] = []
        spread = download_shard(
            meta, replace(settings, workers=2, min_rows_per_worker=1), on_progress=progress.append
        )
    assert spread.equals(inline)
    assert progress[-1].done == progress[-1].total == 14 and progress[-1].ok == 12


def test_summary_counts(settings) -> None:
    with ImageServer({"/a.jpg": image(JPEG), "/gone": status(404)}) as srv:
        urls = [srv.url("/a.jpg"), srv.url("/gone"), srv.url("/gone"), None]
        table = download_shard(metadata(urls), settings)
    summary = summarize(table, elapsed_s=2.0)
    assert summary["attempted"] == 4 and summary["ok"] == 1 and summary["failed"] == 3
    assert summary["success_rate"] == 0.25 and summary["images_per_s"] == 0.5
    assert summary["reasons"] == {"http_404": 2, "missing_url": 1}
    assert summary["bytes"] == len(JPEG)
    assert summary["top_failing_domains"] == [["127.0.0.1", 2], ["(no host)", 1]]


def test_summary_of_an_empty_table() -> None:
    summary = summarize(IMAGES_SCHEMA.empty_table())
    assert (summary["attempted"], summary["success_rate"], summary["bytes"]) == (0, 0.0, 0)
    assert "images_per_s" not in summary


def test_metadata_without_optional_columns(settings) -> None:
    table = download_shard(pa.table({"uid": ["a"], "url": [None]}), settings)
    assert table["reason"].to_pylist() == ["missing_url"]
