"""``clip-assets retrieve``: the command a dataset builder runs, end to end on real files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clip_assets.cli import main
from clip_assets.schemas import FONDANT_RETRIEVAL_SCHEMA, RETRIEVAL_SCHEMA, RETRIEVED_IMAGES_SCHEMA


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.csv"
    path.write_text("prompt_id,prompt\ncat,a sleeping cat\nbike,a red bicycle\n")
    return path


def test_retrieve_from_a_dataset_in_the_root_writes_every_output(
    picture_index: Path, prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "retrieve",
        *("--dataset", picture_index.name, "--root", str(picture_index.parent)),
        *("--queries", str(prompts), "--out", str(out / "hits.parquet"), "-k", "8"),
        *("--max-per-query", "3", "--dedup", "--dedup-exact", "--device", "cpu"),
        *("--fondant", str(out / "fondant.parquet"), "--images", str(out / "images.parquet")),
        "--allow-private-urls",
    ]
    assert main(argv) == 0
    hits = pq.read_table(out / "hits.parquet")
    assert hits.schema.remove_metadata() == RETRIEVAL_SCHEMA
    assert hits["query_id"].to_pylist() == ["cat"] * 3 + ["bike"] * 3
    assert len(set(hits["url"].to_pylist())) == 6  # deduplicated across both prompts
    assert pq.read_table(out / "fondant.parquet").schema == FONDANT_RETRIEVAL_SCHEMA
    images = pq.read_table(out / "images.parquet")
    assert images.schema == RETRIEVED_IMAGES_SCHEMA and images.num_rows == 6
    printed = capsys.readouterr().out
    assert "queries" in printed and "images ok" in printed


def test_retrieve_from_an_index_folder(picture_index: Path, prompts: Path, tmp_path: Path) -> None:
    out = tmp_path / "hits.parquet"
    argv = ["retrieve", "--index-dir", str(picture_index), "--queries", str(prompts)]
    assert main([*argv, "--out", str(out), "-k", "2", "--device", "cpu"]) == 0
    assert pq.read_table(out).num_rows == 4


def test_a_bad_query_set_fails_before_anything_loads(
    picture_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,colour\na,red\n")
    out = tmp_path / "hits.parquet"
    argv = ["retrieve", "--index-dir", str(picture_index), "--queries", str(bad), "--out", str(out)]
    assert main(argv) == 1
    assert "no query column" in capsys.readouterr().err
    assert not out.exists()
