"""The per-dataset report: figures read back from real images files, a picture whose bars tell a
partition's health, Markdown embedding it, and the release card showing the same picture."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from release_samples import unit_vectors, write_embeddings

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import download_shard_to_file
from clip_assets.download.summary import SUMMARY_KEY
from clip_assets.index import EmbeddingShard, build_index
from clip_assets.index.index_settings import IndexSettings
from clip_assets.offline.datacomp import SampleRow, datacomp_uid
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import sample_site
from clip_assets.release.inputs import ReleaseInputs, released_partitions
from clip_assets.release.release_folder import write_release_folder
from clip_assets.release.report import (
    LOW_COLOUR,
    OK_COLOUR,
    PartitionFigures,
    compact_png,
    png_data_uri,
    read_partition_figures,
    render_png,
    report_markdown,
)
from clip_assets.schemas import METADATA_SCHEMA

BROKEN_REASONS = {
    "http_404": 1,
    "http_500": 1,
    "not_an_image": 1,
    "truncated_image": 1,
    "sha256_mismatch": 1,
}


def metadata(rows: list[SampleRow]) -> pa.Table:
    """The metadata stage's table for ``rows`` (what the images stage reads)."""
    n = len(rows)
    columns = {
        "uid": [datacomp_uid(r.text, r.url) for r in rows],
        "url": [r.url for r in rows],
        "text": [r.text for r in rows],
        "sha256": [r.sha256 for r in rows],
        "original_width": [r.width for r in rows],
        "original_height": [r.height for r in rows],
        "face_bboxes": [None] * n,
        "source_file": ["a.parquet"] * n,
        "source_revision": [None] * n,
        "source_row": list(range(n)),
    }
    return pa.table(columns, schema=METADATA_SCHEMA)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> list[PartitionFigures]:
    """Two partitions downloaded from a loopback site: six good images, then two good ones
    and the five broken answers of ``sample_site``."""
    site = sample_site(good=8)
    folder = tmp_path_factory.mktemp("images")
    settings = DownloadSettings(
        allowed_hosts=("127.0.0.1",), read_timeout_s=2.0, total_timeout_s=3.0, workers=0
    )
    figures = []
    with ImageServer(site.routes) as server:
        rows = site.rows(server)
        good = [r for r in rows if "/img/" in (r.url or "")]
        broken = [r for r in rows if "/img/" not in (r.url or "")]
        for key, part in (("p-0000", good[:6]), ("p-0001", good[6:] + broken)):
            path = folder / f"{key}.parquet"
            download_shard_to_file(metadata(part), settings, path)
            figures.append(read_partition_figures(key, path))
    return figures


@pytest.fixture(scope="module")
def infos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real IVF index's infos, whose tuning walked several nprobe settings."""
    folder = tmp_path_factory.mktemp("index")
    shards = []
    for p in range(2):
        path = folder / f"shard-{p}.parquet"
        write_embeddings(
            path, unit_vectors(1500, seed=p), [f"{p}-{i}" for i in range(1500)], pa.float32()
        )
        shards.append(EmbeddingShard(f"shard-{p}", path))
    settings = IndexSettings(index_key="IVF32,Flat", query_count=100, latency_queries=50)
    return build_index(shards, folder / "out", settings)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def count_colour(image: np.ndarray, colour: str) -> int:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return int(np.all(image == rgb, axis=-1).sum())


def test_figures_are_read_back_from_the_stored_images_files(figures) -> None:
    """From the footers alone: the counts, the reasons and the download time."""
    full, mixed = figures
    assert (full.partition, full.rows, full.ok, full.failed) == ("p-0000", 6, 6, 0)
    assert full.success_rate == 1.0 and full.reasons == {}
    assert (mixed.rows, mixed.ok, mixed.failed) == (7, 2, 5)
    assert mixed.success_rate == pytest.approx(2 / 7)
    assert mixed.reasons == BROKEN_REASONS
    # The images files record their download time, so throughput needs no other source.
    assert all(p.images_per_s is not None and p.images_per_s > 0 for p in figures)


def test_picture_shows_a_partition_under_the_floor_in_red(figures, infos) -> None:
    healthy = pixels(render_png("demo", figures, infos))
    assert count_colour(healthy, OK_COLOUR) > 1000
    assert count_colour(healthy, LOW_COLOUR) == 0
    flagged = pixels(render_png("demo", figures, infos, success_floor=0.5))
    assert count_colour(flagged, LOW_COLOUR) > 1000  # p-0001, 29% downloaded
    assert count_colour(flagged, OK_COLOUR) < count_colour(healthy, OK_COLOUR)
    assert healthy.shape == (560, 880, 3)


def test_picture_is_the_same_bytes_for_the_same_inputs(figures, infos) -> None:
    assert render_png("demo", figures, infos) == render_png("demo", figures, infos)
    assert render_png("demo", figures, infos) != render_png("other", figures, infos)


def test_the_compact_picture_keeps_size_and_bar_colours_in_fewer_bytes(figures, infos) -> None:
    png = render_png("demo", figures, infos, success_floor=0.5)
    small = compact_png(png)
    assert len(small) < len(png) / 2
    full, compact = pixels(png), pixels(small)
    assert compact.shape == full.shape
    for colour in (OK_COLOUR, LOW_COLOUR):
        assert count_colour(compact, colour) >= count_colour(full, colour) > 1000


def test_markdown_embeds_the_picture_and_the_figures(figures, infos) -> None:
    png = render_png("demo", figures, infos)
    markdown = report_markdown("demo", figures, infos, png_data_uri(png))
    inline = markdown.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert base64.b64decode(inline) == png
    assert "8 of 13 images downloaded (61.5%) over 2 partitions." in markdown
    assert "| p-0001 | 7 | 2 | 5 | 28.6% |" in markdown
    assert "| sha256_mismatch | 1 |" in markdown
    curve = infos["tuning"]["curve"]
    assert len(curve) > 1
    for point in curve:
        setting = ", ".join(f"{k}={v}" for k, v in point["params"].items())
        assert f"| {setting} | {point['recall@10']:.3f} |" in markdown


def test_release_card_shows_the_same_picture(
    figures, infos, inputs: ReleaseInputs, tmp_path: Path
) -> None:
    (inputs.index_dir / "index_infos.json").write_text(json.dumps(infos))
    with_report = dataclasses.replace(inputs, partitions=tuple(figures), success_floor=0.5)
    out = tmp_path / "release"
    summary = write_release_folder(with_report, out)
    assert "report.png" in summary["files"]
    expected = render_png(inputs.dataset, figures, infos, success_floor=0.5)
    assert (out / "report.png").read_bytes() == expected
    card = (out / "README.md").read_text()
    assert "## Report" in card and "](report.png)" in card
    assert "| p-0000 | 6 | 6 | 0 | 100.0% |" in card
    write_release_folder(inputs, tmp_path / "plain")  # no figures: no picture
    assert not (tmp_path / "plain" / "report.png").exists()
    assert "## Report" not in (tmp_path / "plain" / "README.md").read_text()


def test_release_figures_come_from_footers_or_else_from_the_rows(figures, tmp_path: Path) -> None:
    """What the release asset gathers per partition: the footer's counts (with throughput),
    or, for a file written before footers held them, counts of its status and reason rows."""
    old = tmp_path / "old.parquet"
    pq.write_table(
        pa.table({"status": ["ok", "failed", "ok", "failed"], "reason": [None, "http_404"] * 2}),
        old,
    )
    footers = {"new": {SUMMARY_KEY: json.dumps(_summary_of(figures[1])).encode()}}
    got = released_partitions(
        {"p-new": "new", "p-old": str(old)},
        footers.get,
        lambda path, columns: pq.read_table(path, columns=columns),
    )
    assert got[0] == dataclasses.replace(figures[1], partition="p-new")
    assert (got[1].partition, got[1].rows, got[1].ok, got[1].failed) == ("p-old", 4, 2, 2)
    assert got[1].success_rate == 0.5 and got[1].reasons == {"http_404": 2}
    assert got[1].images_per_s is None


def _summary_of(p: PartitionFigures) -> dict:
    return {
        "attempted": p.rows,
        "ok": p.ok,
        "success_rate": p.success_rate,
        "images_per_s": p.images_per_s,
        "reasons": p.reasons,
    }
