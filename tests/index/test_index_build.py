"""build_index on real parquet shards with real faiss: ids, index choice, tuning, recall, growth."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
from autofaiss.indices.index_factory import index_factory as autofaiss_index_factory
from conftest import DIM, FAST
from index_samples import embeddings_table, write_shards

from clip_assets.index import EmbeddingShard, IndexSettings, build_index, open_index
from clip_assets.index.index_keys import choose_index_key, create_index
from clip_assets.index.params import apply_search_params
from clip_assets.index.recall import search_recall


def settings(**overrides) -> IndexSettings:
    return IndexSettings(**{**FAST.to_dict(), **overrides})


def test_ids_follow_the_given_shard_order_then_row_order(tmp_path):
    # Names deliberately unsorted: the caller's order, not the names, decides the ids.
    shards, vectors = write_shards(tmp_path / "emb", {"c": 7, "a": 12, "b": 5}, DIM)
    infos = build_index(shards, tmp_path / "index", settings())

    shard_list = json.loads((tmp_path / "index" / "shards.json").read_text())
    assert [(s["name"], s["rows"], s["first_id"]) for s in shard_list["shards"]] == [
        ("c", 7, 0),
        ("a", 12, 7),
        ("b", 5, 19),
    ]
    index = open_index(tmp_path / "index")
    assert index.ntotal == infos["nb vectors"] == 24
    np.testing.assert_array_equal(index.reconstruct_n(0, 24), vectors)
    _, found = index.search(vectors, 1)
    assert found[:, 0].tolist() == list(range(24))


def test_tiny_input_builds_flat_and_still_measures_recall(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"only": 30}, DIM)
    infos = build_index(shards, tmp_path / "index", settings(), text_queries=np.eye(DIM)[:3])

    assert infos["index_key"] == "Flat"
    assert infos["mode"] == "rebuilt"
    assert infos["recall"]["image"]["recall@10"] == 1.0
    assert infos["recall"]["text"]["queries"] == 3
    assert infos["recall@1"] == 1.0
    assert infos["recall"]["queries_in_index"]  # too few vectors to hold queries back
    assert infos["latency_ms"]["p50"] > 0
    on_disk = json.loads((tmp_path / "index" / "index_infos.json").read_text())
    assert on_disk["nb vectors"] == 30


def test_float16_embeddings_are_read(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(20, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    path = tmp_path / "half.parquet"
    pq.write_table(embeddings_table(vectors, "half", "float16"), path)
    build_index([EmbeddingShard("half", path)], tmp_path / "index", settings())
    stored = open_index(tmp_path / "index").reconstruct_n(0, 20)
    np.testing.assert_allclose(stored, vectors, atol=1e-3)


def test_hnsw_tuning_picks_the_cheapest_ef_search_that_meets_the_target(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"p0": 1500, "p1": 1500}, DIM)
    infos = build_index(shards, tmp_path / "index", settings(recall_target=0.95))

    assert infos["index_key"].startswith("HNSW")  # autofaiss's choice at this size
    curve = infos["tuning"]["curve"]
    chosen = infos["search_params"]["efSearch"]
    assert infos["tuning"]["target_met"]
    assert chosen <= 64  # autofaiss would spend its 10 ms budget instead
    assert next(p["params"]["efSearch"] for p in curve if p["recall@10"] >= 0.95) == chosen
    assert all(p["recall@10"] < 0.95 for p in curve if p["params"]["efSearch"] < chosen)
    assert infos["index_param"] == f"efSearch={chosen}"
    assert infos["recall@10"] >= 0.9  # held-out queries, not the tuning ones
    assert not infos["recall"]["queries_in_index"]  # measured before the queries were added
    assert infos["nb vectors"] == 3000
    index = open_index(tmp_path / "index")
    assert faiss.downcast_index(index).hnsw.efSearch == chosen


def test_ivf_with_hnsw_quantizer_gets_nprobe_set_and_stored(ivf_build):
    index_dir, _, _, infos = ivf_build
    params = infos["search_params"]
    # autofaiss tunes any key containing "HNSW" as plain HNSW and leaves nprobe at 1.
    assert params["nprobe"] > 1
    assert params["quantizer_efSearch"] >= 2 * params["nprobe"]
    assert infos["tuning"]["target_met"]
    assert infos["recall@10"] >= 0.9

    index = open_index(index_dir)  # keep a reference: sub-indexes do not own their parent
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nprobe == params["nprobe"]
    quantizer = faiss.downcast_index(ivf.quantizer)
    assert quantizer.hnsw.efSearch == params["quantizer_efSearch"]


def test_recall_is_measured_a_bad_parameter_scores_lower(ivf_build):
    index_dir, _, vectors, _infos = ivf_build
    index = open_index(index_dir, mmap=False)
    queries = vectors[:200]
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(queries, 11)
    own = np.arange(200)

    tuned = search_recall(index, queries, truth, own, 10)["recall@10"]
    apply_search_params(index, {"nprobe": 1, "quantizer_efSearch": 16})
    starved = search_recall(index, queries, truth, own, 10)["recall@10"]
    assert starved < tuned - 0.05
    assert tuned >= 0.9


def test_search_params_that_do_not_apply_are_an_error(ivf_build):
    index = open_index(ivf_build[0])
    with pytest.raises(RuntimeError):
        apply_search_params(index, {"efSearch": 32, "nprobe": 4, "unknown_knob": 1})


def test_a_tiny_memory_budget_chooses_a_compressed_key_autofaiss_cannot_build():
    key, _ = choose_index_key(20_000, 512, IndexSettings(max_index_memory_usage="4M"))
    assert key.startswith("OPQ") and ",IVF" in key and ",PQ" in key
    # The faiss 1.15 incompatibility we build around: if this stops raising, autofaiss got fixed.
    with pytest.raises(TypeError):
        autofaiss_index_factory(512, key, faiss.METRIC_INNER_PRODUCT)


def test_compressed_opq_ivf_pq_index_builds_searches_and_reports_recall(tmp_path):
    shards, vectors = write_shards(tmp_path / "emb", {"p0": 1500, "p1": 1500}, DIM)
    key = "OPQ8_32,IVF16_HNSW8,PQ8x4"
    infos = build_index(shards, tmp_path / "index", settings(index_key=key))

    assert infos["index_key"] == key
    assert infos["compression ratio"] > 4
    assert 0 < infos["recall@10"] < 1  # codes lose information: measured, not assumed
    assert infos["reconstruction error %"] > 0
    assert set(infos["search_params"]) == {"nprobe", "quantizer_efSearch"}
    index = open_index(tmp_path / "index")  # IVF lists memory-mapped
    assert faiss.extract_index_ivf(index).nprobe == infos["search_params"]["nprobe"]
    _, found = index.search(vectors[:50], 10)
    assert (found == np.arange(50)[:, None]).any(axis=1).mean() > 0.8  # itself in its top 10

    # An autofaiss-written infos (the Fondant release's) opens with its index_param applied.
    autofaiss_infos = {"index_key": key, "index_param": "nprobe=8,efSearch=20,ht=2048"}
    (tmp_path / "index" / "index_infos.json").write_text(json.dumps(autofaiss_infos))
    index = open_index(tmp_path / "index")
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nprobe == 8
    assert faiss.downcast_index(ivf.quantizer).hnsw.efSearch == 20


def test_growth_adds_small_shares_and_rebuilds_past_the_limit(tmp_path):
    sizes = {"p0": 900, "p1": 900, "p2": 200, "p3": 1000}
    all_shards, vectors = write_shards(tmp_path / "emb", sizes, DIM)
    grow = settings(index_key="IVF16,Flat", incremental_add_max_share=0.2)

    first = build_index(all_shards[:2], tmp_path / "v1", grow)
    assert first["mode"] == "rebuilt"
    before = open_index(tmp_path / "v1")
    centroids = faiss.extract_index_ivf(before).quantizer.reconstruct_n(0, 16)

    second = build_index(all_shards[:3], tmp_path / "v2", grow, previous=tmp_path / "v1")
    assert second["mode"] == "incremental", second["mode_reason"]
    grown = open_index(tmp_path / "v2", mmap=False)
    assert grown.ntotal == 2000
    np.testing.assert_array_equal(
        faiss.extract_index_ivf(grown).quantizer.reconstruct_n(0, 16), centroids
    )
    _, found = grown.search(vectors[1800:1810], 1)  # the added shard's rows have ids 1800..
    assert found[:, 0].tolist() == list(range(1800, 1810))
    assert second["recall@10"] > 0

    third = build_index(all_shards, tmp_path / "v3", grow, previous=tmp_path / "v2")
    assert third["mode"] == "rebuilt"
    assert "incremental_add_max_share" in third["mode_reason"]

    reordered = [all_shards[1], all_shards[0], all_shards[2]]
    fourth = build_index(reordered, tmp_path / "v4", grow, previous=tmp_path / "v2")
    assert fourth["mode"] == "rebuilt"
    assert "changed or moved" in fourth["mode_reason"]


def test_growth_into_the_same_folder(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"p0": 1000, "p1": 100}, DIM)
    grow = settings(index_key="IVF8,Flat")
    build_index(shards[:1], tmp_path / "index", grow)
    infos = build_index(shards, tmp_path / "index", grow, previous=tmp_path / "index")
    assert infos["mode"] == "incremental"
    assert open_index(tmp_path / "index").ntotal == 1100


def test_hnsw_previous_build_is_rebuilt(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"p0": 1200, "p1": 10}, DIM)
    build_index(shards[:1], tmp_path / "v1", settings())
    infos = build_index(shards, tmp_path / "v2", settings(), previous=tmp_path / "v1")
    assert infos["mode"] == "rebuilt"
    assert "not a trained IVF" in infos["mode_reason"]


def test_an_ivf_override_larger_than_the_data_is_a_clear_error(tmp_path):
    shards, _ = write_shards(tmp_path / "emb", {"p0": 40}, DIM)
    with pytest.raises(ValueError, match="more IVF lists than"):
        build_index(shards, tmp_path / "index", settings(index_key="IVF64,Flat"))


def test_hnsw_build_effort_reaches_the_graph_and_the_coarse_quantizer():
    hnsw = create_index("HNSW32", DIM, "ip", ef_construction=128)
    assert faiss.downcast_index(hnsw).hnsw.efConstruction == 128
    ivf_index = create_index("IVF64_HNSW16,Flat", DIM, "ip", ef_construction=100)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(ivf_index).quantizer)
    assert quantizer.hnsw.efConstruction == 100
