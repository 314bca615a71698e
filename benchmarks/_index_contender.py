"""One contender of ``bench_index_scale.py``, run in its own process so its memory is its own.

    python benchmarks/_index_contender.py build ours|autofaiss|exact CONFIG.json
    python benchmarks/_index_contender.py search ours|autofaiss|exact CONFIG.json

``build`` writes ``<work>/<name>/faiss`` and ``index_infos.json`` (index_key, index_param), so
``search`` opens all three the same way: ``clip_assets.index.open_index`` memory-mapped, with the
recorded parameters applied, and times single-query searches twice: first after the open, then
after the batch search has run (warm). Each prints one JSON line.

- ours: ``build_index`` with default ``IndexSettings`` but the scaled memory budget;
- autofaiss: autofaiss's own pick (``get_optimal_index_keys_v2``), trained on autofaiss's own
  training set (the first ``get_optimal_train_size`` vectors, capped by ``peer_train_vectors``),
  filled, and tuned by autofaiss's own ``get_optimal_hyperparameters`` (10 ms budget, its
  default). autofaiss's ``build_index`` cannot run it itself on faiss 1.15 (its OPQ factory
  passes keywords faiss 1.15 rejects; see ``clip_assets.index.index_keys``), so the index is
  made by ``faiss.index_factory``, the same structure;
- exact: brute force over the stored float16 vectors (``SQfp16``: lossless for float16
  embeddings, half the memory of ``IndexFlatIP``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from clip_assets.index import EmbeddingShard, IndexSettings, build_index, open_index
from clip_assets.index.infos import write_infos
from clip_assets.index.recall import latency_ms, recall_scores
from clip_assets.index.shards import gather_vectors, iter_vectors
from clip_assets.paths import INDEX_NAME

K = 10
PROGRESS_NAME = "progress.json"


def _status_mb() -> dict[str, float]:
    """RssAnon (memory the process owns) and RssFile (mapped file pages, page cache)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def _shards(config: dict) -> list[EmbeddingShard]:
    return [EmbeddingShard(name, Path(path)) for name, path in config["shards"]]


def build_ours(config: dict, out: Path) -> dict:
    settings = IndexSettings(
        max_index_memory_usage=config["max_index_memory_usage"],
        current_memory_available=config["current_memory_available"],
        nb_cores=config["threads"],
    )
    texts = np.load(config["build_text_queries"])
    infos = build_index(
        _shards(config),
        out,
        settings,
        text_queries=texts,
        progress=lambda progress: print(progress, file=sys.stderr, flush=True),
    )
    return {
        "index_key": infos["index_key"],
        "index_param": infos["index_param"],
        "index_bytes": infos["size in bytes"],
        "autofaiss_key": infos.get("autofaiss_key"),
        "key_reason": infos["key_reason"],
        "build_recall": infos.get("recall"),
        "training_vectors": infos["training_vectors"],
        "phases_s": infos["timings_s"],
        "phases_cpu_s": infos["cpu_s"],
        "candidates": [
            {key: value for key, value in c.items() if key != "curve"} for c in infos["candidates"]
        ],
    }


class _Phases:
    """Times the phases of a build and keeps ``<out>/progress.json`` current (atomically), so a
    parent that stops the build at its wall-clock cap can say which phase it reached and when."""

    def __init__(self, out: Path, **facts) -> None:
        self.path = out / PROGRESS_NAME
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.state: dict = {**facts, "phase": None, "finished": self.timings}

    def note(self, **facts) -> None:
        self.state.update(facts, elapsed_s=time.perf_counter() - self.started)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.path)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        tick = time.perf_counter()
        self.note(phase=name, phase_started_s=tick - self.started)
        print(f"autofaiss contender: {name} started", file=sys.stderr, flush=True)
        yield
        self.timings[name] = time.perf_counter() - tick
        self.note()


def build_autofaiss(config: dict, out: Path) -> dict:
    from autofaiss.external.optimize import (
        get_optimal_hyperparameters,
        get_optimal_index_keys_v2,
        get_optimal_train_size,
    )

    shards, n, dim = _shards(config), config["n"], config["dim"]
    faiss.omp_set_num_threads(config["threads"])
    key = get_optimal_index_keys_v2(n, dim, config["max_index_memory_usage"])[0]
    own_train = int(get_optimal_train_size(n, key, config["current_memory_available"], dim))
    train_size = min(own_train, config["peer_train_vectors"] or own_train)
    index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    phases = _Phases(out, key=key, training_vectors=train_size)
    with phases.phase("sample"):
        train = gather_vectors(shards, dim, np.arange(train_size), 65_536)
    with phases.phase("train"):
        index.train(train)
    del train
    with phases.phase("add"):
        for first_id, vectors in iter_vectors(shards, dim, 65_536):
            index.add(vectors)
            phases.note(added=first_id + len(vectors))
    with phases.phase("tune"):
        param = get_optimal_hyperparameters(
            index, key, max_speed_ms=10.0, min_nearest_neighbors_to_retrieve=20
        )
    timings = phases.timings
    faiss.write_index(index, str(out / INDEX_NAME))
    write_infos({"index_key": key, "index_param": param}, out)
    return {
        "index_key": key,
        "index_param": param,
        "index_bytes": (out / INDEX_NAME).stat().st_size,
        "training_vectors": train_size,
        "autofaiss_training_vectors": own_train,
        "phases_s": timings,
    }


def build_exact(config: dict, out: Path) -> dict:
    index = faiss.IndexScalarQuantizer(
        config["dim"], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    for _, vectors in iter_vectors(_shards(config), config["dim"], 65_536):
        index.add(vectors)
    faiss.write_index(index, str(out / INDEX_NAME))
    write_infos({"index_key": "SQfp16", "index_param": ""}, out)
    return {
        "index_key": "SQfp16",
        "index_param": "",
        "index_bytes": (out / INDEX_NAME).stat().st_size,
    }


def search(name: str, config: dict) -> dict:
    faiss.omp_set_num_threads(config["threads"])
    before = _status_mb()
    index = open_index(Path(config["work"]) / name, mmap=True)
    opened = _status_mb()
    queries = {"image": np.load(config["image_queries"]), "text": np.load(config["text_queries"])}
    truth = {"image": np.load(config["image_truth"]), "text": np.load(config["text_truth"])}
    figures: dict = {
        "rss_anon_mb_open": opened["RssAnon"] - before["RssAnon"],
        "rss_file_mb_open": opened["RssFile"] - before["RssFile"],
    }
    count = config["exact_latency_queries"] if name == "exact" else config["latency_queries"]
    timed = queries["image"]  # the exact contender's batch below takes a share; these stay whole
    latency = latency_ms(index, timed, K, count)
    figures.update(
        p50_ms=latency["p50"],
        p99_ms=latency["p99"],
        cpu_p50_ms=latency["cpu_p50"],
        cpu_p99_ms=latency["cpu_p99"],
    )
    if name == "exact":  # brute force over millions of fp16 codes: a share of the queries
        share = config.get("exact_batch_queries") or None
        queries = {modality: q[:share] for modality, q in queries.items()}
        truth = {modality: t[:share] for modality, t in truth.items()}
    batch = np.concatenate(list(queries.values()))
    tick = time.perf_counter()
    _, found = index.search(batch, K)
    figures["batch_qps"] = len(batch) / (time.perf_counter() - tick)
    start = 0
    for modality, vectors in queries.items():
        scores = recall_scores(found[start : start + len(vectors)], truth[modality], K)
        figures[f"{modality}_recall@1"] = scores["recall@1"]
        figures[f"{modality}_recall@10"] = scores["recall@10"]
        start += len(vectors)
    # Again, once the batch has touched the index: what a serving process that has answered a
    # while sees (the first pass above pays the page faults of a freshly opened mmap).
    warm = latency_ms(index, timed, K, count)
    figures.update(warm_p50_ms=warm["p50"], warm_p99_ms=warm["p99"])
    searched = _status_mb()
    figures["rss_anon_mb_searched"] = searched["RssAnon"] - before["RssAnon"]
    figures["rss_file_mb_searched"] = searched["RssFile"] - before["RssFile"]
    return figures


def main() -> None:
    verb, name, config_path = sys.argv[1:4]
    config = json.loads(Path(config_path).read_text())
    if verb == "search":
        result = search(name, config)
    else:
        out = Path(config["work"]) / name
        out.mkdir(parents=True, exist_ok=True)
        builders = {"ours": build_ours, "autofaiss": build_autofaiss, "exact": build_exact}
        result = builders[name](config, out)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
