"""The whole asset graph end to end through Dagster on a real instance, real HTTP, real faiss."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    Definitions,
    MarkdownMetadataValue,
    evaluate_automation_conditions,
    materialize,
)
from huggingface_hub import DatasetCard
from PIL import Image

from clip_assets.assets.index_checks import build_index_checks
from clip_assets.embed import model_loading as embed_model
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import run_dataset
from clip_assets.graph.factory import dataset_definitions
from clip_assets.graph.partitions import RANGE_END_TAG, RANGE_START_TAG
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.offline.image_server import ImageServer
from clip_assets.offline.sample import SampleSite
from clip_assets.registry import DatasetSpec
from clip_assets.release.report import LOW_COLOUR, OK_COLOUR
from clip_assets.search.stored import open_stored
from resources.clip_model import ClipModelResource
from resources.downloader import DownloaderResource


def dataset_assets(graph: DatasetGraph) -> list:
    """The dataset's assets as the code location defines them."""
    return list(dataset_definitions(graph).assets)


EXPECTED_FAILURES = {
    "/broken/missing.jpg": ("failed", "http_404"),
    "/broken/error.jpg": ("failed", "http_500"),
    "/broken/page.jpg": ("failed", "not_an_image"),
    "/broken/truncated.jpg": ("failed", "truncated_image"),
    "/broken/slow.jpg": ("failed", "timeout"),
    "/broken/changed.jpg": ("hash_mismatch", "sha256_mismatch"),
}


@pytest.fixture(scope="module")
def built(
    tmp_path_factory, site: SampleSite, image_server: ImageServer, tiny_model_name, make_resources
):
    """One full run over 2 partitions, shared by the assertions below."""
    tmp = tmp_path_factory.mktemp("pipeline")
    rows = site.rows(image_server)
    write_datacomp_shard(tmp / "source", rows)
    spec = DatasetSpec(
        name="sample",
        source=str(tmp / "source"),
        rows_per_partition=(len(rows) + 1) // 2,
        allowed_hosts=("127.0.0.1",),
    )
    resources = make_resources(tmp / "data", tiny_model_name)
    instance = DagsterInstance.ephemeral()
    loads_before = embed_model.load_count()
    run = run_dataset(spec, resources, instance, log=lambda _: None)
    return {
        "spec": spec,
        "root": tmp / "data" / "sample",
        "rows": rows,
        "run": run,
        "instance": instance,
        "resources": resources,
        "loads": embed_model.load_count() - loads_before,
        "server": image_server,
    }


def test_two_partitions_materialised_in_one_run(built) -> None:
    assert len(built["run"].partitions) == 2
    assert built["run"].partition_runs == 1 and not built["run"].failed_ranges
    graph = DatasetGraph(built["spec"])
    for stage in ("metadata", "images", "embeddings"):
        done = built["instance"].get_materialized_partitions(graph.key(stage))
        assert done == set(built["run"].partitions), stage
    for stage in ("faiss_index", "id_mapping", "hf_release"):
        assert built["instance"].get_latest_materialization_event(graph.key(stage)) is not None


def test_every_input_row_appears_once_with_a_status(built) -> None:
    images = pq.read_table(built["root"] / "images").to_pylist()
    by_url = {row["url"]: row for row in images}
    assert len(images) == len(built["rows"]) == len(by_url)
    assert [row["url"] for row in images] == [row.url for row in built["rows"]]
    server = built["server"]
    for path, (status, reason) in EXPECTED_FAILURES.items():
        row = by_url[server.url(path)]
        assert (row["status"], row["reason"]) == (status, reason), path
    ok = [row for row in images if row["status"] == "ok"]
    assert len(ok) == 20
    assert all(row["reason"] is None and row["sha256_ok"] for row in ok)
    assert all(min(row["width"], row["height"]) == 256 for row in ok)


def test_embeddings_unit_norm_512_and_only_ok_rows(built) -> None:
    table = pq.read_table(built["root"] / "embeddings")
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert vectors.shape == (20, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    images = pq.read_table(built["root"] / "images")
    ok_uids = [
        u
        for u, s in zip(images["uid"].to_pylist(), images["status"].to_pylist(), strict=True)
        if s == "ok"
    ]
    assert table.column("uid").to_pylist() == ok_uids


def test_model_loaded_once_per_run(built) -> None:
    # One load for the partitions' run (two partitions), one for the index run's text queries.
    assert built["loads"] == 2


def test_index_build_progress_reaches_the_asset_log(built) -> None:
    instance = built["instance"]
    lines = [
        entry.user_message
        for run in instance.get_runs()
        for entry in instance.all_logs(run.run_id)
        if entry.step_key and entry.step_key.endswith("faiss_index")
    ]
    progress = [line for line in lines if line.startswith("index build ")]
    phases = [line.split()[2] for line in progress if " finished" in line]
    assert phases[:2] == ["describe", "sample"] and phases[-1] == "write"
    assert "add" in phases and "tune" in phases
    added = next(line for line in progress if line.startswith("index build add"))
    assert "started: 20 to do" in added


def test_id_mapping_covers_ids_once_and_matches_the_index(built) -> None:
    mapping = pq.read_table(built["root"] / "id_mapping").to_pylist()
    assert [row["i"] for row in mapping] == list(range(20))
    embeddings = pq.read_table(built["root"] / "embeddings")
    assert [row["uid"] for row in mapping] == embeddings.column("uid").to_pylist()
    metadata = {r["uid"]: r["text"] for r in pq.read_table(built["root"] / "metadata").to_pylist()}
    assert all(row["text"] == metadata[row["uid"]] for row in mapping)


def test_query_with_a_stored_embedding_returns_that_image_first(built) -> None:
    embeddings = pq.read_table(built["root"] / "embeddings")
    vectors = np.stack(embeddings.column("embedding").to_numpy(zero_copy_only=False))
    with open_stored(built["resources"]["storage"], "sample") as searcher:
        results = searcher.search(vectors[[3, 11]], k=5)
        assert [hits[0].url for hits in results] == [
            embeddings.column("url")[3].as_py(),
            embeddings.column("url")[11].as_py(),
        ]
        assert results[0][0].similarity == pytest.approx(1.0, abs=1e-3)
        text_hits = searcher.search_texts(["a picture of red circles"], k=3)[0]
        assert len(text_hits) == 3


def test_release_folder_has_the_layout_and_the_card(built) -> None:
    release = built["root"] / "release"
    names = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert {"faiss", "index_infos.json", "README.md"} <= names
    assert any(n.startswith("data/") and n.endswith(".parquet") for n in names)
    assert any(n.startswith("id_mapping/") and n.endswith(".parquet") for n in names)
    data = pq.read_table(release / "data")
    assert data.column_names[:3] == ["id", "url", "embedding"]
    card = DatasetCard.load(release / "README.md")
    configs = card.data.to_dict()["configs"]
    assert {c["config_name"] for c in configs} == {"embeddings", "id_mapping", "metadata"}
    assert [c["config_name"] for c in configs if c.get("default")] == ["embeddings"]
    assert "report.png" in names and "](report.png)" in card.text  # the report, per partition
    # No local path is published: the source folder, the model folder and the store are all
    # under pytest's base temp folder.
    local = str(built["root"].parents[2])
    for path in release.rglob("*"):
        if path.suffix in (".md", ".json"):
            assert local not in path.read_text(), path
        elif path.suffix == ".parquet":
            assert local not in str(pq.read_metadata(path).metadata), path
    infos = json.loads((release / "index_infos.json").read_text())
    assert "recall" in json.dumps(infos)


def test_rerun_of_a_partition_is_idempotent(built) -> None:
    key = built["run"].partitions[0]
    path = built["root"] / "images" / f"{key}.parquet"
    before = pq.read_table(path).drop_columns(["attempts"])
    graph = DatasetGraph(built["spec"])
    result = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("metadata"), graph.key("images")],
        partition_key=key,
    )
    assert result.success
    assert pq.read_table(path).drop_columns(["attempts"]).equals(before)


def test_failed_partition_leaves_no_partial_file(built, tmp_path: Path) -> None:
    key = built["run"].partitions[1]
    graph = DatasetGraph(built["spec"])
    folder = built["root"] / "embeddings"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    resources = dict(built["resources"])
    missing = tmp_path / "no-such-weights.safetensors"
    resources["clip_model"] = ClipModelResource(model_name="ViT-B-32", pretrained=str(missing))
    result = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=resources,
        selection=[graph.key("embeddings")],
        partition_key=key,
        raise_on_error=False,
    )
    assert not result.success
    errors = [
        e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure
    ]
    assert any(str(missing) in message for message in errors)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_new_embeddings_partition_triggers_an_index_rebuild(built) -> None:
    graph = DatasetGraph(built["spec"])
    assets = dataset_assets(graph)
    defs = Definitions(assets=assets, resources=built["resources"])
    settled = evaluate_automation_conditions(defs, built["instance"])
    assert settled.get_num_requested(graph.key("faiss_index")) == 0
    result = materialize(
        assets,
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("embeddings")],
        partition_key=built["run"].partitions[0],
    )
    assert result.success
    after = evaluate_automation_conditions(defs, built["instance"], cursor=settled.cursor)
    # The index and everything built from it follow in the same tick; nothing upstream does.
    for stage in ("faiss_index", "id_mapping", "hf_release"):
        assert after.get_num_requested(graph.key(stage)) == 1, stage
    for stage in ("metadata", "images", "embeddings"):
        assert after.get_num_requested(graph.key(stage)) == 0, stage


def materialize_images(built, key: str, config: dict):
    """One run of the images asset alone for partition ``key`` with this run config."""
    graph = DatasetGraph(built["spec"])
    return materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("images")],
        partition_key=key,
        run_config={"ops": {"sample__images": {"config": config}}},
    )


def test_retry_failed_only_refetches_transient_failures(built) -> None:
    key = built["run"].partitions[0]
    path = built["root"] / "images" / f"{key}.parquet"
    before = pq.read_table(path)
    server = built["server"]
    hits = dict(server.hits)
    assert materialize_images(built, key, {"retry_failed_only": True}).success
    fetched = {p for p, n in server.hits.items() if n > hits.get(p, 0)}
    assert fetched == {"/broken/error.jpg", "/broken/slow.jpg", "/robots.txt"}  # once a run
    after = pq.read_table(path)
    retried = pa.array([server.url("/broken/error.jpg"), server.url("/broken/slow.jpg")])
    kept = pc.invert(pc.is_in(before["url"], value_set=retried))
    assert after.filter(kept).equals(before.filter(kept))
    assert after.num_rows == before.num_rows


def _latest_metadata(instance: DagsterInstance, key, partition: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    assert records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {k: v.value for k, v in materialization.metadata.items()}


def test_each_partition_of_a_run_carries_its_own_metadata(built) -> None:
    graph = DatasetGraph(built["spec"])
    first, second = built["run"].partitions
    a = _latest_metadata(built["instance"], graph.key("images"), first)
    b = _latest_metadata(built["instance"], graph.key("images"), second)
    images = pq.read_table(built["root"] / "images")
    per_partition = [
        pq.read_table(built["root"] / "images" / f"{key}.parquet").num_rows
        for key in (first, second)
    ]
    assert [a["dagster/row_count"], b["dagster/row_count"]] == per_partition
    assert sum(per_partition) == images.num_rows
    for metadata in (a, b):
        assert 0.0 <= metadata["success_rate"] <= 1.0
        assert "partitions" not in metadata
        assert metadata["stage_s"] > 0
    reasons = {r.data["reason"] for r in b["failure_reasons"].records} | {
        r.data["reason"] for r in a["failure_reasons"].records
    }
    assert {"http_404", "timeout"} <= reasons


def bars(panel: np.ndarray, colours: tuple[str, ...], min_height: int = 20) -> int:
    """How many vertical bars in ``colours`` a panel holds: runs of columns with at least
    ``min_height`` pixels of those colours (text and edges are never that tall)."""
    rgb = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in colours]
    hit = np.any([np.all(panel == c, axis=-1) for c in rgb], axis=0)
    tall = (hit.sum(axis=0) >= min_height).astype(int)
    return int((np.diff(np.concatenate([[0], tall])) == 1).sum())


def test_the_release_shows_the_report_in_the_ui(built) -> None:
    """The hf_release materialization carries the card's picture as Markdown the UI renders:
    a small PNG inline whose success panel has one bar per partition."""
    graph = DatasetGraph(built["spec"])
    event = built["instance"].get_latest_materialization_event(graph.key("hf_release"))
    metadata = event.asset_materialization.metadata
    report = metadata["report"]
    assert isinstance(report, MarkdownMetadataValue)
    released = pq.read_table(built["root"] / "release" / "data").num_rows
    assert metadata["dagster/row_count"].value == released > 0
    inline = report.value.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    png = base64.b64decode(inline, validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(report.value) < 200_000
    with Image.open(io.BytesIO(png)) as picture:
        shown = np.asarray(picture.convert("RGB"))
    card = Image.open(built["root"] / "release" / "report.png")
    assert shown.shape == (560, 880, 3) == (card.height, card.width, 3)
    success_panel = shown[:280, :440]  # top left: success rate per partition
    assert bars(success_panel, (OK_COLOUR, LOW_COLOUR)) == len(built["run"].partitions) == 2
    for key in built["run"].partitions:
        row = next(line for line in report.value.splitlines() if line.startswith(f"| {key} |"))
        assert not row.endswith("| n/a |")  # throughput read from the images file's footer


def test_a_complete_partition_is_kept_not_fetched_again(built) -> None:
    graph = DatasetGraph(built["spec"])
    key = built["run"].partitions[1]
    server = built["server"]
    hits = dict(server.hits)
    path = built["root"] / "images" / f"{key}.parquet"
    before = path.read_bytes()
    result = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("images"), graph.key("embeddings")],
        partition_key=key,
    )
    assert result.success
    assert server.hits == hits
    assert path.read_bytes() == before
    assert _latest_metadata(built["instance"], graph.key("images"), key)["kept"] is True
    assert _latest_metadata(built["instance"], graph.key("embeddings"), key)["kept"] is True


def test_changed_output_settings_fetch_the_partition_again(built) -> None:
    graph = DatasetGraph(built["spec"])
    key = built["run"].partitions[1]
    resources = dict(built["resources"])
    resources["downloader"] = DownloaderResource(
        **{**resources["downloader"].model_dump(), "image_size": 128}
    )
    server = built["server"]
    hits = dict(server.hits)
    result = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=resources,
        selection=[graph.key("images")],
        partition_key=key,
    )
    assert result.success
    assert sum(server.hits.values()) > sum(hits.values())
    ok = pq.read_table(built["root"] / "images" / f"{key}.parquet").filter(
        pc.equal(pc.field("status"), "ok")
    )
    assert all(min(r["width"], r["height"]) == 128 for r in ok.to_pylist())
    restored = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("images")],
        partition_key=key,
    )
    assert restored.success


def test_download_health_warns_without_blocking(built) -> None:
    """The images check passes on a healthy run and warns, with advice, under strict
    thresholds; the materialization goes through either way."""
    key = built["run"].partitions[0]
    outcomes = []
    strict = {"health_min_rows": 1, "health_min_success_rate": 0.99}
    for config in ({"refetch": True}, {"refetch": True, **strict}):
        result = materialize_images(built, key, config)
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        outcomes.append((evaluation.check_name, evaluation.passed, evaluation.severity.value))
        problems = evaluation.metadata["problems"].value
    assert outcomes == [("download_health", True, "WARN"), ("download_health", False, "WARN")]
    assert problems.startswith(f"{key}: success rate") and "under 99%" in problems
    (materialization,) = result.asset_materializations_for_node("sample__images")
    assert {"dns_lookups", "hosts_unreachable", "dns_cache_hit_rate"} <= set(
        materialization.metadata
    )


def test_each_partition_gets_its_own_health_in_a_ranged_run(built) -> None:
    """A partition under its success floor is marked (not green) on its own, in a run that
    materialises several partitions, while its healthy neighbour passes."""
    graph = DatasetGraph(built["spec"])
    first, last = built["run"].partitions
    rates = {
        key: _latest_metadata(built["instance"], graph.key("images"), key)["success_rate"]
        for key in (first, last)
    }
    floor = (min(rates.values()) + max(rates.values())) / 2
    assert min(rates.values()) < floor < max(rates.values())
    result = materialize(
        dataset_assets(graph),
        instance=built["instance"],
        resources=built["resources"],
        selection=[graph.key("images")],
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
        run_config={
            "ops": {
                "sample__images": {
                    "config": {"health_min_rows": 1, "health_min_success_rate": floor}
                }
            }
        },
    )
    assert result.success
    by_partition = {
        e.partition: e.passed for e in result.get_asset_check_evaluations() if e.partition
    }
    assert by_partition == {key: rates[key] >= floor for key in (first, last)}


def test_checks_fail_on_a_corrupted_index_and_mapping(built) -> None:
    """Last: it damages the built files."""
    graph = DatasetGraph(built["spec"])
    checks = build_index_checks(graph)
    index = built["root"] / "index" / "faiss"
    index.write_bytes(index.read_bytes()[:-100])
    mapping = next((built["root"] / "id_mapping").glob("*.parquet"))
    table = pq.read_table(mapping)
    pq.write_table(table.slice(0, table.num_rows - 1), mapping)
    result = materialize(
        [*dataset_assets(graph), *checks],
        instance=built["instance"],
        resources=built["resources"],
        selection=AssetSelection.checks(*checks),
        raise_on_error=False,
    )
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes == {
        "size_equals_ok_images": False,
        "recall_at_10": True,
        "ids_cover_index_once": False,
    }
