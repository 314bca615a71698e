"""Our index build vs autofaiss's defaults vs exact search, on clustered synthetic embeddings.

The data is a mixture on the unit sphere (``--clusters`` centres, gaussian spread ``--spread``
around each, renormalised), written as embeddings shards of ``--shard-rows`` rows like the
``embeddings`` partitions. Queries are ``--queries`` fresh draws from the same mixture, so none
is an indexed vector. Ground truth is an exact inner-product search over every vector.

Rows of the table, all measured the same way (recall@1/@10 against the ground truth on the same
queries, single-query latency p50/p99 over ``--latency-queries`` searches, ``--threads`` faiss
threads):

- ``ours``: ``clip_assets.index.build_index`` with default ``IndexSettings`` (autofaiss's key
  choice, search parameters tuned for recall@10 >= 0.95 at the least latency), opened with
  ``open_index``;
- ``autofaiss``: ``autofaiss.build_index`` with its defaults (same key choice, parameters tuned to
  fill a 10 ms budget), opened with its ``index_param`` applied;
- ``exact``: ``IndexFlatIP`` over the same vectors.

    .venv/bin/python benchmarks/bench_index.py --n 200000
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
from _harness import write_results

from clip_assets.index import EmbeddingShard, IndexSettings, build_index, open_index
from clip_assets.index.params import apply_search_params
from clip_assets.index.recall import ExactNeighbors, latency_ms, recall_scores
from clip_assets.index.shards import iter_vectors
from clip_assets.schemas import embeddings_schema

K = 10


def mixture(rng: np.random.Generator, centers: np.ndarray, n: int, spread: float) -> np.ndarray:
    """``n`` unit vectors: a random centre plus gaussian noise of norm ~``spread``."""
    dim = centers.shape[1]
    vectors = centers[rng.integers(0, len(centers), n)]
    vectors = vectors + spread * rng.normal(size=(n, dim)).astype(np.float32) / np.sqrt(dim)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_shards(args: argparse.Namespace, folder: Path) -> tuple[list[EmbeddingShard], np.ndarray]:
    """Shards of the mixture (one file at a time, so memory stays at one shard) and the queries."""
    import pyarrow as pa

    rng = np.random.default_rng(args.seed)
    centers = rng.normal(size=(args.clusters, args.dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for number, start in enumerate(range(0, args.n, args.shard_rows)):
        rows = min(args.shard_rows, args.n - start)
        vectors = mixture(rng, centers, rows, args.spread)
        ids = range(start, start + rows)
        table = pa.table(
            {
                "uid": [f"{i:032x}" for i in ids],
                "url": [f"http://127.0.0.1/{i}.jpg" for i in ids],
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), args.dim),
            },
            schema=embeddings_schema(args.dim),
        )
        path = folder / f"part-{number:04d}.parquet"
        pq.write_table(table, path)
        shards.append(EmbeddingShard(f"part-{number:04d}", path))
    return shards, mixture(rng, centers, args.queries, args.spread)


def measure(name: str, index: faiss.Index, queries, truth, build_s, args, extra) -> dict:
    """The same figures for every contender; ``extra['latency_queries']`` overrides the count."""
    count = extra.pop("latency_queries", args.latency_queries)
    _, found = index.search(queries, K)
    return {
        "name": name,
        "build_s": build_s,
        **recall_scores(found, truth, K),
        **{
            f"{key}_ms": value
            for key, value in latency_ms(index, queries, K, count).items()
            if key in ("p50", "p99")
        },
        **extra,
    }


def run(args: argparse.Namespace, work: Path) -> list[dict]:
    faiss.omp_set_num_threads(args.threads)
    tick = time.perf_counter()
    shards, queries = write_shards(args, work / "embeddings")
    print(
        f"wrote {args.n} x {args.dim} in {len(shards)} shards in {time.perf_counter() - tick:.0f} s"
    )

    tick = time.perf_counter()
    exact_neighbors = ExactNeighbors(queries, K, faiss.METRIC_INNER_PRODUCT)
    flat = faiss.IndexFlatIP(args.dim)
    for first_id, vectors in iter_vectors(shards, args.dim, 65_536):
        exact_neighbors.add(first_id, vectors)
        flat.add(vectors)
    truth = exact_neighbors.result()
    results = [
        measure(
            "exact (IndexFlatIP)",
            flat,
            queries,
            truth,
            time.perf_counter() - tick,
            args,
            {"index_key": "Flat", "index_param": "", "latency_queries": args.exact_latency_queries},
        )
    ]
    del flat

    settings = IndexSettings(nb_cores=args.threads)
    if args.ef_construction:
        settings = IndexSettings(nb_cores=args.threads, hnsw_ef_construction=args.ef_construction)
    tick = time.perf_counter()
    infos = build_index(shards, work / "ours", settings)
    build_s = time.perf_counter() - tick
    ours = open_index(work / "ours", mmap=False)
    results.append(
        measure(
            "ours",
            ours,
            queries,
            truth,
            build_s,
            args,
            {
                "index_key": infos["index_key"],
                "index_param": infos["index_param"],
                "size_mb": infos["size in bytes"] / 2**20,
                "curve": infos.get("tuning", {}).get("curve"),
            },
        )
    )
    del ours

    if not args.skip_autofaiss:
        from autofaiss import build_index as autofaiss_build

        tick = time.perf_counter()
        _, auto_infos = autofaiss_build(
            embeddings=str(work / "embeddings"),
            file_format="parquet",
            embedding_column_name="embedding",
            index_path=str(work / "autofaiss" / "knn.index"),
            index_infos_path=str(work / "autofaiss" / "infos.json"),
            metric_type="ip",
            nb_cores=args.threads,
            current_memory_available=args.memory,
            verbose=logging.WARNING,
        )
        build_s = time.perf_counter() - tick
        auto = faiss.read_index(str(work / "autofaiss" / "knn.index"))
        if auto_infos["index_param"]:
            apply_search_params(auto, auto_infos["index_param"])
        results.append(
            measure(
                "autofaiss defaults",
                auto,
                queries,
                truth,
                build_s,
                args,
                {
                    "index_key": auto_infos["index_key"],
                    "index_param": auto_infos["index_param"],
                    "size_mb": auto_infos["size in bytes"] / 2**20,
                },
            )
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--spread", type=float, default=0.6)
    parser.add_argument("--shard-rows", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--latency-queries", type=int, default=1_000)
    parser.add_argument(
        "--exact-latency-queries", type=int, default=100, help="brute force is slow: fewer"
    )
    parser.add_argument("--threads", type=int, default=faiss.omp_get_max_threads())
    parser.add_argument("--memory", default="32G", help="autofaiss current_memory_available")
    parser.add_argument("--ef-construction", type=int, help="ours only; default: IndexSettings's")
    parser.add_argument("--skip-autofaiss", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep files here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, args.work or Path(tmp))
    print(
        f"\n{args.n} x {args.dim}, {args.clusters} clusters, {args.queries} held-out queries, "
        f"k={K}, {args.threads} faiss threads"
    )
    columns = ("index_key", "index_param", "build s", "R@1", "R@10", "p50 ms", "p99 ms")
    widths = (12, 32, 8, 6, 6, 7, 7)
    print(f"{'':20} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for r in results:
        print(
            f"{r['name']:20} {r['index_key']:>12} {r['index_param']:>32} {r['build_s']:8.1f} "
            f"{r['recall@1']:6.3f} {r['recall@10']:6.3f} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f}"
        )
    for r in results:
        if r.get("curve"):
            print(f"\n{r['name']} tuning curve (the build's own tuning queries):")
            for point in r["curve"]:
                print(
                    f"  {json.dumps(point['params']):40} recall@10 {point['recall@10']:.3f}"
                    f"  p50 {point['p50_ms']:.3f} ms"
                )
    if args.json:
        write_results(args.json, args, results)


if __name__ == "__main__":
    main()
