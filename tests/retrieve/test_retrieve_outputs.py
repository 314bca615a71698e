"""What a retrieval turns into: a training set with image bytes, Fondant's shape, a Hub index."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.retrieve.fondant_view import write_fondant
from clip_assets.retrieve.query_set import QuerySet
from clip_assets.retrieve.retrieval import retrieve_to_file
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.retrieve.retrieved_images import download_hits_to_file
from clip_assets.schemas import FONDANT_RETRIEVAL_SCHEMA, RETRIEVED_IMAGES_SCHEMA
from clip_assets.search import ClipSearcher

LOOPBACK = DownloadSettings(
    allowed_hosts=("127.0.0.1",), workers=0, retries=0, connect_timeout_s=2, read_timeout_s=2
)


def prompt_hits(searcher: ClipSearcher, tmp_path: Path, k: int) -> Path:
    (tmp_path / "prompts.csv").write_text("id,prompt\ncat,a sleeping cat\nsoup,a bowl of soup\n")
    hits = tmp_path / "hits.parquet"
    retrieve_to_file(searcher, QuerySet(tmp_path / "prompts.csv"), RetrievalSettings(k=k), hits)
    return hits


def test_download_accounts_for_every_hit(picture_searcher: ClipSearcher, tmp_path: Path) -> None:
    hits_path = prompt_hits(picture_searcher, tmp_path, k=len(picture_searcher))
    hits = pq.read_table(hits_path)
    assert hits.num_rows == 2 * 14  # every indexed image, for both prompts

    out = tmp_path / "train.parquet"
    summary = download_hits_to_file(hits_path, LOOPBACK, out, rows_per_slice=9)
    images = pq.read_table(out)
    assert images.schema == RETRIEVED_IMAGES_SCHEMA
    assert images.select(hits.column_names).equals(hits.replace_schema_metadata(None))
    by_url = dict(zip(images["url"].to_pylist(), images["reason"].to_pylist(), strict=True))
    assert by_url[next(u for u in by_url if u.endswith("/gone.jpg"))] == "http_404"
    assert by_url[next(u for u in by_url if u.endswith("/page.jpg"))] == "not_an_image"
    statuses = images["status"].to_pylist()
    assert statuses.count("ok") == 2 * 12 and statuses.count("failed") == 2 * 2
    assert summary["attempted"] == 28 and summary["ok"] == 24
    ok = images.filter(pa.compute.equal(images["status"], "ok"))
    first = Image.open(io.BytesIO(ok["image"][0].as_py()))
    assert min(first.size) == LOOPBACK.image_size or max(first.size) < LOOPBACK.image_size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temp files gone


def test_fondant_view_has_a_url_per_prompt_id(
    picture_searcher: ClipSearcher, tmp_path: Path
) -> None:
    hits = pq.read_table(prompt_hits(picture_searcher, tmp_path, k=2))
    out = tmp_path / "fondant.parquet"
    assert write_fondant(tmp_path / "hits.parquet", out) == 4
    table = pq.read_table(out)
    assert table.schema == FONDANT_RETRIEVAL_SCHEMA
    # Read as Fondant reads a component's output: a dataframe indexed by the unique string id.
    frame = pd.read_parquet(out).set_index("id", verify_integrity=True)
    assert list(frame.index) == ["cat_1", "cat_2", "soup_1", "soup_2"]
    assert list(frame["prompt_id"]) == ["cat", "cat", "soup", "soup"]
    assert list(frame["prompt"]) == ["a sleeping cat"] * 2 + ["a bowl of soup"] * 2
    assert list(frame["image_url"]) == hits["url"].to_pylist()


def test_a_published_release_in_the_hub_cache_is_an_index_source(
    picture_index: Path, picture_searcher: ClipSearcher, tmp_path: Path, monkeypatch
) -> None:
    """A user with only the published repo (faiss, model.json, id_mapping/ at the top, as our
    release and Fondant's lay them out) builds the same dataset as from our storage."""
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    snapshot = tmp_path / "hub" / "datasets--someone--pictures-clip" / "snapshots" / commit
    for source, target in [
        (picture_index / "index" / "faiss", snapshot / "faiss"),
        (picture_index / "index" / "model.json", snapshot / "model.json"),
        (picture_index / "id_mapping" / "0.parquet", snapshot / "id_mapping" / "0.parquet"),
    ]:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    refs = tmp_path / "hub" / "datasets--someone--pictures-clip" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    published = ClipSearcher.from_hub("someone/pictures-clip", cache_dir=tmp_path / "hub")
    published.model = published.model.override(device="cpu")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_hub = pq.read_table(prompt_hits(published, tmp_path / "a", k=3))
    from_storage = pq.read_table(prompt_hits(picture_searcher, tmp_path / "b", k=3))
    assert from_hub.drop_columns(["similarity"]).equals(from_storage.drop_columns(["similarity"]))
    np.testing.assert_allclose(from_hub["similarity"], from_storage["similarity"], atol=1e-5)
