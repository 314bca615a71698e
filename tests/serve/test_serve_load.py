"""Running the service: bounded concurrency under real concurrent HTTP requests, models loaded
before the first query, and /health reporting each index."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from gallery_pictures import N_IMAGES, RECALL
from stand_ins.clip_client import serve_on_loopback

from clip_assets.offline.image_server import ImageServer, hang
from clip_assets.search import ClipSearcher, QueryModel
from clip_assets.serve import Limits, ModelUnavailable, create_app, warm_up


def health(url: str) -> dict:
    return requests.get(f"{url}/health", timeout=10).json()


def wait_for(condition, what: str) -> None:
    """Poll ``condition`` until true; fail (not time) if it never becomes true in 30 s."""
    give_up = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < give_up, f"never saw: {what}"
        time.sleep(0.02)


def test_a_full_queue_answers_503_with_retry_after(
    searchers: dict[str, ClipSearcher], vectors: np.ndarray
) -> None:
    """One query runs (its image host never answers), one waits, the third is turned away at
    once; when the host goes away both held queries finish and the service answers again."""
    limits = Limits(max_running=1, max_waiting=1, retry_after_s=7)
    app = create_app({"gallery": searchers["gallery"]}, limits=limits, allow_private_urls=True)
    with serve_on_loopback(app) as url, ThreadPoolExecutor(2) as pool:
        stalled = ImageServer({"/stall.jpg": hang()}).start()
        held = json.dumps({"image_url": stalled.url("/stall.jpg")})

        def post() -> requests.Response:
            return requests.post(f"{url}/knn-service", data=held, timeout=60)

        running = pool.submit(post)
        wait_for(lambda: stalled.hits["/stall.jpg"] == 1, "the first query fetching")
        waiting = pool.submit(post)
        wait_for(lambda: health(url)["queries"]["waiting"] == 1, "the second query queued")
        assert health(url)["queries"] == {
            "running": 1,
            "waiting": 1,
            "max_running": 1,
            "max_waiting": 1,
        }

        turned_away = requests.post(f"{url}/knn-service", data=held, timeout=10)
        assert turned_away.status_code == 503
        assert turned_away.headers["Retry-After"] == "7"
        assert "busy (1 queries running, 1 waiting)" in turned_away.json()["error"]
        metadata = requests.post(f"{url}/metadata", data='{"ids": [1]}', timeout=10)
        assert metadata.status_code == 503  # the same queue guards /metadata
        assert requests.get(f"{url}/indices-list", timeout=10).status_code == 200

        stalled.stop()  # the hung host hangs up: the running query fails, the waiting one runs
        for held_query in (running.result(), waiting.result()):
            assert held_query.status_code == 400
            assert "image_url: fetching" in held_query.json()["error"]
        assert stalled.hits["/stall.jpg"] == 1  # the waiting query never fetched while queued
        body = json.dumps({"embedding_input": vectors[3].tolist()})
        answer = requests.post(f"{url}/knn-service", data=body, timeout=30)
        assert answer.status_code == 200
        assert answer.json()[0]["id"] == 3
        assert health(url)["queries"]["running"] == 0


def test_warm_up_loads_each_model_once_and_says_what_is_served(gallery: Path) -> None:
    """Opened from the folder alone (model.json names the tiny model), nothing is loaded until
    ``warm_up``; after it, /health says the model is loaded and what each index is."""
    searchers = {"pics": ClipSearcher.open(gallery), "pics_again": ClipSearcher.open(gallery)}
    assert not any(s.encoder_loaded for s in searchers.values())
    lines: list[str] = []
    warm_up(searchers, lines.append)
    assert all(s.encoder_loaded for s in searchers.values())
    assert searchers["pics"].encoder is searchers["pics_again"].encoder
    loaded = [line for line in lines if " loaded on " in line]
    assert len(loaded) == 1  # one model, loaded and warmed once
    assert loaded[0].startswith(f"model {searchers['pics'].model.model_name} (no pretrained tag) ")
    assert loaded[0].endswith(" s") and " on cpu in " in loaded[0]
    model = searchers["pics"].model.model_name
    assert lines[1:] == [
        f"{name}: {N_IMAGES} vectors of 512, Flat, recall@10 0.975 image / 0.925 text, "
        f"model {model} (no pretrained tag), memory-mapped"
        for name in searchers
    ]

    with serve_on_loopback(create_app(searchers)) as url:
        report = health(url)
    assert report["status"] == "ok"
    first = report["indices"][0]
    assert first["name"] == "pics"
    assert (first["vectors"], first["index_key"], first["recall_k"]) == (N_IMAGES, "Flat", 10)
    assert first["recall"] == {k: v["recall@10"] for k, v in RECALL.items()}
    assert first["memory_mapped"] is True
    assert first["model_loaded"] is True


def test_a_model_that_cannot_load_stops_start_up_with_its_name(gallery: Path) -> None:
    searcher = ClipSearcher.open(gallery, model=QueryModel("no-such-model", None, "cpu"))
    with pytest.raises(ModelUnavailable, match="index 'broken': the CLIP model no-such-model"):
        warm_up({"broken": searcher}, lambda line: None)
    lines: list[str] = []
    warm_up({"broken": searcher}, lines.append, load_models=False)
    assert lines[0] == "models load on the first text or image query"
    assert not searcher.encoder_loaded
