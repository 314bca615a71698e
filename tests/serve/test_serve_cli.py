"""``clip-assets search`` in-process on the tiny-model gallery, ``clip-assets serve`` as a real
process on a loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from clip_assets.cli import main
from clip_assets.offline.image_server import ImageServer


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_text_search_uses_the_model_named_in_model_json(
    gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "search", "--index-dir", str(gallery), "-k", "3", "--json", "a")
    assert status == 0
    results = json.loads(out)
    assert len(results) == 3
    assert set(results[0]) == {"id", "similarity", "url", "uid", "caption"}


def test_image_file_search_prints_a_table(
    gallery: Path,
    tmp_path: Path,
    gallery_image: Callable[[int], bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    query = tmp_path / "query.jpg"
    query.write_bytes(gallery_image(7))
    root = str(gallery.parent)
    status, out, _ = run(
        capsys, "search", "--dataset", "gallery", "--root", root, "--image", str(query)
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "similarity", "url", "caption"]
    assert len(lines) == 11  # header + the default k=10
    rank, similarity, url, *caption = lines[1].split()
    assert (rank, url.rsplit("/", 1)[1], " ".join(caption)) == ("1", "7.jpg", "picture number 7")
    assert float(similarity) == pytest.approx(1.0, abs=1e-3)


def test_embedding_file_runs_one_query_per_row(
    gallery: Path, vectors: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "queries.npy"
    np.save(path, vectors[[4, 9]])
    status, out, _ = run(
        capsys, "search", "--index-dir", str(gallery), "--embedding", str(path), "-k", "1"
    )
    assert status == 0
    blocks = out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"# {path}[0]", f"# {path}[1]"]
    assert blocks[0].splitlines()[2].split()[2].endswith("/4.jpg")
    assert blocks[1].splitlines()[2].split()[2].endswith("/9.jpg")


def test_image_url_needs_permission_for_loopback(
    gallery: Path, gallery_server: ImageServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = gallery_server.url("/3.jpg")
    args = ["search", "--index-dir", str(gallery), "--image-url", url, "--json", "-k", "1"]
    status, _, err = run(capsys, *args)
    assert status == 1
    assert "private_address" in err
    status, out, _ = run(capsys, *args, "--allow-private-urls")
    assert status == 0
    assert json.loads(out)[0]["id"] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--index-dir", "{gallery}"], "one kind of query"),
        (["search", "--index-dir", "{gallery}", "x", "--image", "y.jpg"], "one kind of query"),
        (["search", "cat"], "exactly one of --dataset"),
        (["search", "--dataset", "nope", "--root", "{gallery}", "cat"], "no index in"),
        (
            ["search", "--index-dir", "{gallery}", "cat", "--model", "no-such-model"],
            "no-such-model",
        ),
        (["serve", "--index", "g"], "NAME=LOCATION"),
    ],
)
def test_mistakes_exit_1_with_a_message(
    gallery: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, *[a.format(gallery=gallery) for a in argv])
    assert status == 1
    assert message in err


def test_serve_answers_on_loopback(gallery: Path, vectors: np.ndarray, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "clip_assets.cli", "serve", "--port", str(port)]
    command += ["--index", f"pics={gallery}", "--dataset", "gallery", "--root", str(gallery.parent)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                names = requests.get(f"{base}/indices-list", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not start in 60 s"
                time.sleep(0.2)
        assert names == ["pics", "gallery"]
        # The model loaded (and said so) before the port opened: nothing left for a query.
        said = (tmp_path / "serve.log").read_text().splitlines()
        loaded = [line for line in said if line.startswith("model ") and " loaded on cpu " in line]
        assert len(loaded) == 1, said  # both names serve the same folder: one model
        assert said.index(loaded[0]) < said.index(f"search page: http://127.0.0.1:{port}/")
        pics = next(line for line in said if line.startswith("pics: "))
        assert pics.startswith("pics: 24 vectors of 512, Flat, recall@10 0.975 image / 0.925 text")
        health = requests.get(f"{base}/health", timeout=10).json()
        assert [i["model_loaded"] for i in health["indices"]] == [True, True]
        body = json.dumps({"embedding_input": vectors[6].tolist(), "indice_name": "pics"})
        results = requests.post(f"{base}/knn-service", data=body, timeout=10).json()
        assert results[0]["id"] == 6
        assert "<title>clip-assets search</title>" in requests.get(base, timeout=5).text
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
