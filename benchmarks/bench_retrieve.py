"""Batch retrieval (``retrieve_to_file``) against one-query-at-a-time search, on a 1M-vector index.

The index is ``bench_index.py``'s: ``--n`` clustered 512-d unit vectors (a mixture on the
sphere) in embeddings shards, built by ``clip_assets.index.build_index`` with default
``IndexSettings`` (HNSW32 at 1M, search parameters tuned for recall@10 >= 0.95), its id mapping
built by ``build_id_mapping``, and ``model.json`` naming a tiny open_clip model with stand-in
weights (``install_tiny_model``: two layers, 512-d, ViT-B-32's tokenizer) for the text side.
It is kept under ``--work`` and reused by later runs with the same ``--n`` and ``--seed``.

Rows of the table, all over the same searcher (``ClipSearcher.open``, memory-mapped), k
``--k``, ``--threads`` faiss threads:

- ``embeddings, batch``: ``--queries`` held-out mixture draws as a parquet query set, through
  ``retrieve_to_file`` (read, search in batches of ``--batch-size``, join the mapping, write);
- ``embeddings, one at a time``: ``ClipSearcher.search(vector, k)`` per query, the call the CLI
  and the service make, on the first ``--single`` of them (results as Python objects, nothing
  written: the cheaper side);
- ``text, batch`` / ``text, one at a time``: ``--prompts`` captions as a CSV query set through
  ``retrieve_to_file``, against ``ClipSearcher.search_texts([prompt], k)`` per prompt;
- ``embeddings, batch, exact dedup`` / ``dedup``: the batch row with deduplication across the
  whole result by id and url only, and with near-duplicate removal (cosine >= 0.94) as well.

queries/s is queries over wall time; queries/CPU-s over this process's CPU time (all threads),
the figure other work on a shared machine distorts least. ``--torch-threads 1`` keeps the text
encoder on one thread: on a loaded machine a second intra-op thread mostly waits for a core.
Before any clock starts the model is loaded and the memory-mapped index paged in (a warm-up
search of 4,096 queries), so every row finds the index in the page cache.

    .venv/bin/python benchmarks/bench_retrieve.py            # builds the index on first run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from _harness import CACHE, write_results
from bench_index import write_shards

from clip_assets.index import IndexSettings, build_index
from clip_assets.index.mapping import build_id_mapping
from clip_assets.offline.sample import site_scenes
from clip_assets.offline.weights import install_tiny_model
from clip_assets.retrieve.query_set import QuerySet
from clip_assets.retrieve.retrieval import retrieve_to_file
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.search import ClipSearcher

MAPPING_ROWS = 100_000


def build(args: argparse.Namespace, folder: Path) -> None:
    """The index, its id mapping, ``model.json`` and the held-out queries, under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = SimpleNamespace(
        n=args.n,
        dim=512,
        clusters=1_000,
        spread=0.6,
        shard_rows=50_000,
        queries=args.queries,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tick = time.perf_counter()
        shards, queries = write_shards(shape, Path(tmp) / "embeddings")
        infos = build_index(shards, folder / "index", IndexSettings(nb_cores=args.threads))
        took = time.perf_counter() - tick
        print(f"built {infos['index_key']} ({infos['index_param']}) in {took:.0f} s")
        paths = {shard.name: shard.path for shard in shards}
        (folder / "id_mapping").mkdir(exist_ok=True)
        chunks = build_id_mapping(
            folder / "index", lambda name: pq.read_table(paths[name]), chunk_rows=MAPPING_ROWS
        )
        for number, table in enumerate(chunks):
            pq.write_table(table, folder / "id_mapping" / f"{number:05d}.parquet")
    np.save(folder / "queries.npy", queries)
    model = install_tiny_model(folder / "tiny-model")
    (folder / "index" / "model.json").write_text(
        json.dumps({"model_name": model, "pretrained": None})
    )
    (folder / "built.json").write_text(json.dumps(built(args)))


def built(args: argparse.Namespace) -> dict:
    """What a kept index was built for: another ``--n``, ``--seed`` or ``--queries`` rebuilds."""
    return {"n": args.n, "seed": args.seed, "queries": args.queries}


def measure(name: str, count: int, work: Callable[[], object]) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"name": name, "queries": count, "wall_s": wall, "cpu_s": cpu}
    print(
        f"  {name:32} {count:6} queries {count / wall:9.1f} q/s {count / cpu:9.1f} q/CPU-s",
        flush=True,
    )
    return {**row, "queries_per_s": count / wall, "queries_per_cpu_s": count / cpu}


def write_query_sets(
    args: argparse.Namespace, folder: Path, out: Path
) -> tuple[np.ndarray, list[str]]:
    """``embeddings.parquet`` (held-out vectors) and ``prompts.parquet`` under ``out``."""
    queries = np.load(folder / "queries.npy")[: args.queries]
    column = pa.FixedSizeListArray.from_arrays(pa.array(queries.ravel()), queries.shape[1])
    ids = [f"q{i}" for i in range(len(queries))]
    pq.write_table(pa.table({"id": ids, "embedding": column}), out / "embeddings.parquet")
    prompts = [f"{scene.caption} number {i}" for i, scene in enumerate(site_scenes(args.prompts))]
    prompt_ids = [f"p{i}" for i in range(len(prompts))]
    pq.write_table(pa.table({"prompt_id": prompt_ids, "prompt": prompts}), out / "prompts.parquet")
    return queries, prompts


def run(args: argparse.Namespace, folder: Path, out: Path) -> list[dict]:
    searcher = ClipSearcher.open(folder)  # the query model from the index's model.json
    searcher.model = searcher.model.override(device="cpu")
    queries, prompts = write_query_sets(args, folder, out)
    searcher.encoder.encode_texts(prompts[:8])  # load the model before any clock starts
    # Page the memory-mapped index in before any clock starts, so the first row measured does
    # not pay for reading it from disk while the others find it in the page cache.
    searcher.nearest(queries[: min(len(queries), 4096)], args.k)
    plain = RetrievalSettings(k=args.k, batch_size=args.batch_size)
    dedup = RetrievalSettings(k=args.k, batch_size=args.batch_size, deduplicate=True)
    exact = RetrievalSettings(
        k=args.k, batch_size=args.batch_size, deduplicate=True, duplicate_similarity=None
    )
    single = min(args.single, len(queries), len(prompts))
    infos = searcher.infos
    print(f"{len(searcher)} vectors, {infos.get('index_key')} {infos.get('index_param')}")
    threads = f"{args.threads} faiss threads, {torch.get_num_threads()} torch threads"
    print(f"k={args.k}, batch {args.batch_size}, {threads}")

    def batch(query_set: str, settings: RetrievalSettings) -> Callable[[], object]:
        return lambda: retrieve_to_file(
            searcher, QuerySet(out / query_set), settings, out / f"hits-{query_set}"
        )

    results = [
        measure("embeddings, batch", len(queries), batch("embeddings.parquet", plain)),
        measure(
            "embeddings, one at a time",
            single,
            lambda: [searcher.search(v, args.k) for v in queries[:single]],
        ),
        measure("text, batch", len(prompts), batch("prompts.parquet", plain)),
        measure(
            "text, one at a time",
            single,
            lambda: [searcher.search_texts([p], args.k) for p in prompts[:single]],
        ),
        measure("embeddings, batch, exact dedup", len(queries), batch("embeddings.parquet", exact)),
        measure("embeddings, batch, dedup", len(queries), batch("embeddings.parquet", dedup)),
    ]
    by_name = {r["name"]: r for r in results}
    for kind in ("embeddings", "text"):
        many, one = by_name[f"{kind}, batch"], by_name[f"{kind}, one at a time"]
        wall = many["queries_per_s"] / one["queries_per_s"]
        cpu = many["queries_per_cpu_s"] / one["queries_per_cpu_s"]
        print(f"{kind}: batch/one-at-a-time {wall:.1f}x queries/s, {cpu:.1f}x queries/CPU-s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000, help="embedding queries (batch)")
    parser.add_argument("--prompts", type=int, default=5_000, help="text queries (batch)")
    parser.add_argument("--single", type=int, default=2_000, help="queries searched one at a time")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=RetrievalSettings.batch_size)
    parser.add_argument("--threads", type=int, default=faiss.omp_get_max_threads())
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch intra-op threads for the text encoder (default: torch's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work", type=Path, default=CACHE / "retrieve-index", help="index kept here"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    marker = args.work / "built.json"
    if not marker.is_file() or json.loads(marker.read_text()) != built(args):
        build(args, args.work)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, args.work, Path(tmp))
    if args.json:
        write_results(args.json, args, results)


if __name__ == "__main__":
    main()
