"""ClipSearcher over real faiss files in each layout, queried by embedding."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from clip_assets.search import ClipSearcher, LayoutError, QueryModel
from clip_assets.search.layout import HUB_PATTERNS, locate


@pytest.mark.parametrize("layout", ["storage_dir", "release_dir", "fondant_dir", "clip_back_dir"])
def test_stored_vector_is_its_own_nearest_neighbour(
    layout: str, request: pytest.FixtureRequest, vectors: np.ndarray
) -> None:
    searcher = ClipSearcher.open(request.getfixturevalue(layout))
    queries = [7, 42, 299]
    results = searcher.search(vectors[queries], k=5)
    assert [r[0].id for r in results] == queries
    assert all(len(r) == 5 for r in results)
    assert [r[0].url for r in results] == [f"https://img.example/{i}.jpg" for i in queries]
    # Similarities come back sorted, best first.
    assert all(r[0].similarity >= r[-1].similarity for r in results)


def test_storage_layout_carries_uid_caption_and_cosine(storage_dir: Path, vectors: np.ndarray):
    top = ClipSearcher.open(storage_dir).search(vectors[10], k=1)[0][0]
    assert (top.id, top.uid, top.caption) == (10, f"{10:032x}", "caption 10")
    assert top.similarity == pytest.approx(1.0, abs=1e-5)


def test_stored_search_params_are_applied(storage_dir: Path) -> None:
    searcher = ClipSearcher.open(storage_dir)
    assert faiss.extract_index_ivf(searcher.index).nprobe == 4


def test_fondant_layout_has_no_uid_or_caption(fondant_dir: Path, vectors: np.ndarray) -> None:
    searcher = ClipSearcher.open(fondant_dir)
    assert searcher.mapping.columns == {"url": "url", "uid": None, "caption": None}
    top = searcher.search(vectors[3], k=1)[0][0]
    assert (top.id, top.uid, top.caption) == (3, None, None)
    # The stored vector is not unit length: the score is its norm times the cosine (1).
    assert 0.9 <= top.similarity <= 1.1


def test_clip_back_metadata_row_order_is_the_id(clip_back_dir: Path, vectors: np.ndarray):
    top = ClipSearcher.open(clip_back_dir).search(vectors[250], k=1)[0][0]
    assert (top.id, top.caption, top.uid) == (250, "caption 250", None)


def test_query_is_normalised_and_k_is_capped(clip_back_dir: Path, vectors: np.ndarray) -> None:
    searcher = ClipSearcher.open(clip_back_dir)  # exact (Flat): every vector is reachable
    top = searcher.search(5 * vectors[9], k=1)[0][0]
    assert top.id == 9
    assert top.similarity == pytest.approx(1.0, abs=1e-5)
    assert len(searcher.search(vectors[9], k=10_000)[0]) == len(searcher) == len(vectors)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (np.ones(3, np.float32), "64 dimensions"),
        (np.zeros(64, np.float32), "all zeros"),
        (np.full(64, np.nan, np.float32), "NaN"),
    ],
)
def test_bad_query_embeddings_are_refused(release_dir: Path, query, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipSearcher.open(release_dir).search(query)


def test_metadata_by_id_in_order(storage_dir: Path) -> None:
    searcher = ClipSearcher.open(storage_dir)
    assert searcher.metadata([5, 2]) == [
        {"url": "https://img.example/5.jpg", "caption": "caption 5", "uid": f"{5:032x}"},
        {"url": "https://img.example/2.jpg", "caption": "caption 2", "uid": f"{2:032x}"},
    ]
    with pytest.raises(KeyError, match="300"):
        searcher.metadata([300])


def test_model_json_is_read_and_flags_override(release_dir: Path, storage_dir: Path) -> None:
    assert ClipSearcher.open(release_dir).model == QueryModel("tiny", "/weights.pt")
    assert ClipSearcher.open(storage_dir).model == QueryModel()  # the pipeline's default
    chosen = QueryModel("ViT-B-16", "openai", "cpu")
    assert ClipSearcher.open(release_dir, model=chosen).model == chosen


def test_model_json_may_be_an_encoder_identity() -> None:
    """The pipeline writes ``ClipEncoder.identity`` (``model``, not ``model_name``); the
    device it was embedded on does not decide where queries run."""
    identity = {"model": "ViT-B-16", "pretrained": "openai", "device": "cuda:0", "dim": 512}
    assert QueryModel.from_json(identity) == QueryModel("ViT-B-16", "openai", "auto")
    assert QueryModel.from_json({}) == QueryModel("ViT-B-32", "laion2b_s34b_b79k", "auto")


def test_folder_without_index_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="index/faiss"):
        locate(tmp_path)
    (tmp_path / "faiss").write_bytes(b"")
    with pytest.raises(LayoutError, match="no id mapping"):
        locate(tmp_path)


def test_hub_repo_opens_from_the_offline_cache(
    release_dir: Path, vectors: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset repo already in the Hugging Face cache opens through ``snapshot_download``."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--someone--tiny-clip"
    snapshot = repo / "snapshots" / commit
    for path in sorted(release_dir.rglob("*")):
        if path.is_file():
            target = snapshot / path.relative_to(release_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "faiss" in HUB_PATTERNS

    searcher = ClipSearcher.from_hub("someone/tiny-clip", cache_dir=tmp_path / "hub")
    assert searcher.search(vectors[77], k=1)[0][0].id == 77
