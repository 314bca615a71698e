"""The compressed path: a budget too small for float32 vectors, built two-stage or as autofaiss's.

12,000 x 32 vectors under a 1,200 KB budget: autofaiss then picks OPQ + IVF + PQ codes (HNSW and
IVF-Flat do not fit), the same branch its 16G budget takes at DataComp small.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from conftest import DIM, FAST
from index_samples import write_shards

from clip_assets.index import IndexSettings, build_index, check_recall, open_index
from clip_assets.index.calibrate import LATENCY_SLACK
from clip_assets.index.params import (
    K_FACTOR_GRID,
    apply_search_params,
    current_search_params,
    search_grid,
)
from clip_assets.index.recall import recall_scores
from clip_assets.index.two_stage import estimated_bytes, fitting_keys, with_lists
from clip_assets.paths import INDEX_NAME
from clip_assets.search.index_summary import is_mapped

ROWS = 12_000
BUDGET = "1200K"


def settings(**overrides) -> IndexSettings:
    return IndexSettings(**{**FAST.to_dict(), "max_index_memory_usage": BUDGET, **overrides})


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    return flat.search(queries, 10)[1]


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return recall_scores(found, truth, 10)["recall@10"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-stage")
    shards, vectors = write_shards(folder / "emb", {"p0": ROWS // 2, "p1": ROWS // 2}, DIM)
    return folder, shards, vectors


@pytest.fixture(scope="module")
def two_stage(data):
    folder, shards, _ = data
    events = []
    infos = build_index(shards, folder / "refined", settings(), progress=events.append)
    return folder / "refined", infos, events


def test_the_budget_forces_compressed_codes_and_ours_is_chosen_by_measurement(two_stage):
    index_dir, infos, _ = two_stage
    assert "PQ" in infos["autofaiss_key"]  # autofaiss's branch: codes only
    assert "Refine(" in infos["index_key"] or infos["index_key"].endswith(",SQ8")
    measured = {c["index_key"]: c for c in infos["candidates"]}
    assert infos["calibrated_key"] in measured and len(measured) >= 2
    # The chosen candidate is built with its crowded coarse lists split (``coarse``).
    lists = infos["coarse_lists"]["lists"]
    assert infos["index_key"] == with_lists(infos["calibrated_key"], lists)
    assert all(c["curve"] and c["estimated_bytes"] for c in measured.values())
    met = [c for c in measured.values() if c["target_met"]]
    cheapest = min(c["cpu_p50_ms"] for c in met)
    affordable = [c for c in met if c["cpu_p50_ms"] <= LATENCY_SLACK * cheapest]
    chosen = measured[infos["calibrated_key"]]
    assert chosen in affordable
    assert chosen["best_recall"] == max(c["best_recall"] for c in affordable)
    assert infos["size in bytes"] <= 1200 * 1024
    assert (index_dir / INDEX_NAME).stat().st_size == infos["size in bytes"]


def test_two_stage_recall_against_exact_search_and_the_blocking_check(two_stage, data):
    index_dir, infos, _ = two_stage
    _, _, vectors = data
    queries = vectors[-200:]  # the held-out queries are the last ids
    index = open_index(index_dir)
    truth = exact_top10(vectors, queries)
    _, found = index.search(queries, 10)
    assert recall_at_10(found, truth) >= 0.9
    assert infos["tuning"]["target_met"]
    assert check_recall(infos, 0.9).passed


@pytest.fixture(scope="module")
def refined(data):
    """A two-stage key built directly (calibration may prefer IVF-SQ8 at 32 dimensions)."""
    folder, shards, _ = data
    key = "IVF64,PQ8x4fs,Refine(SQfp16)"
    infos = build_index(shards, folder / "forced-refine", settings(index_key=key))
    return folder / "forced-refine", infos


def test_refine_parameters_are_recorded_applied_and_read_back(refined, data):
    index_dir, infos = refined
    assert infos["tuning"]["target_met"]
    index = open_index(index_dir)
    assert current_search_params(index) == infos["search_params"]
    assert infos["search_params"]["k_factor_rf"] >= 1
    rows = search_grid(index)
    assert [row[0]["k_factor_rf"] for row in rows] == sorted(K_FACTOR_GRID, reverse=True)
    assert all(len({p["k_factor_rf"] for p in row}) == 1 for row in rows)
    apply_search_params(index, {"nprobe": 2, "k_factor_rf": 3})
    assert current_search_params(index)["k_factor_rf"] == 3


@pytest.mark.parametrize("build", ["two_stage", "refined"])
def test_memory_mapped_reopen_returns_the_same_neighbours(build, request, data):
    index_dir = request.getfixturevalue(build)[0]
    queries = data[2][:100]
    in_memory = open_index(index_dir, mmap=False)
    mapped = open_index(index_dir, mmap=True)
    assert is_mapped(index_dir / INDEX_NAME)  # what /health reports as memory_mapped
    assert current_search_params(mapped) == current_search_params(in_memory)
    np.testing.assert_array_equal(mapped.search(queries, 10)[1], in_memory.search(queries, 10)[1])


def test_progress_reports_every_phase_and_the_vectors_added(two_stage):
    _, infos, events = two_stage
    finished = [e.phase for e in events if e.state == "finished"]
    assert finished == [
        "describe",
        "sample",
        "neighbourhoods",
        "calibrate",
        "train",
        "add",
        "tune",
        "write",
    ]
    added = next(e for e in events if e.phase == "add" and e.state == "finished")
    assert added.done == added.total == ROWS - 2 * FAST.query_count
    assert set(infos["cpu_s"]) == set(finished)
    assert "add" in str(added) and f"{added.done:,}" in str(added)


def test_refine_off_builds_autofaiss_compressed_key_which_caps_recall(tmp_path):
    # 8 dimensions keep autofaiss's OPQ training quick (OPQ4_12: four 3-d codebooks).
    shards, vectors = write_shards(tmp_path / "emb", {"p0": 5_000, "p1": 5_000}, 8)
    budget = settings(max_index_memory_usage="300K", max_training_vectors=3_000)
    on = build_index(shards, tmp_path / "on", budget)
    off = build_index(
        shards, tmp_path / "off", IndexSettings(**{**budget.to_dict(), "refine": False})
    )
    assert off["index_key"] == on["autofaiss_key"] and off["index_key"].startswith("OPQ")
    assert off["candidates"] == [] and off["autofaiss_key"] is None
    assert off["training_vectors"] == 3_000  # the cap, not autofaiss's own rule
    queries = vectors[-200:]
    truth = exact_top10(vectors, queries)
    recalls = {}
    for name in ("on", "off"):
        _, found = open_index(tmp_path / name).search(queries, 10)
        recalls[name] = recall_at_10(found, truth)
    assert recalls["off"] < 0.9 <= recalls["on"]


def test_the_blocking_check_fails_on_a_deliberately_bad_index(data):
    folder, shards, _ = data
    # Two 4-bit sub-quantizers for 32 dimensions: one byte a vector cannot rank neighbours.
    infos = build_index(shards, folder / "bad", settings(index_key="IVF16,PQ2x4fs"))
    result = check_recall(infos, 0.9)
    assert not result.passed
    assert result.metadata["image_recall@10"] < 0.9


def test_size_estimates_match_the_written_files_and_bound_the_choice(tmp_path, data):
    _, _, vectors = data
    for key in ("IVF64,PQ8x4fs,Refine(SQfp16)", "IVF64,PQ4x4fs,Refine(SQ8)", "IVF64,SQ8"):
        index = faiss.index_factory(DIM, key, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[:4000])
        index.add(vectors)
        faiss.write_index(index, str(tmp_path / "index"))
        written = (tmp_path / "index").stat().st_size
        assert abs(estimated_bytes(key, ROWS, DIM) - written) < 0.05 * written
    fitting = fitting_keys(ROWS, DIM, BUDGET)
    assert fitting and all(estimated_bytes(k, ROWS, DIM) <= 1200 * 1024 for k in fitting)
    assert fitting_keys(ROWS, DIM, "100K") == []
