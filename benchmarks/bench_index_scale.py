"""The index at DataComp scale: ours vs autofaiss's pick vs exact search, on CLIP-like vectors.

DataComp small gives ~9.25M embeddings under a 16G ``max_index_memory_usage``: autofaiss then
compresses (``OPQ256_768,IVF16384_HNSW32,PQ256x8``). This benchmark puts a build on that same
path at a size one machine can measure: ``--n`` vectors (4M by default) with the budget scaled
by n / 9.25M (and ``current_memory_available``, 32G, likewise), so autofaiss's key choice and
ours meet the same constraint a DataComp small run meets.

The vectors (``_clip_like``: clustered, local intrinsic dimension ~20-30, float16) are written
as 50,000-row embeddings shards one shard at a time and every contender streams them from disk.
Image queries are fresh draws of the same mixture; text queries are caption-like draws offset
from the image clusters. Ground truth is an exact search over the stored vectors. Each contender
is built in a child process (build wall, CPU seconds and peak RSS are that process's) and then
searched from another fresh process that opens the written index memory-mapped
(``open_index``), so the search RSS is what a service pays.

    .venv/bin/python benchmarks/bench_index_scale.py --n 4000000 --work /tmp/bench-4m
    .venv/bin/python benchmarks/bench_index_scale.py --n 300000 --contenders ours

``--work`` keeps the shards (reused when the same ``--n``/``--seed`` is asked again), the
indexes and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np
from _clip_like import ClipLikeSpace, describe_neighbours, write_shards
from _index_contender import PROGRESS_NAME

from clip_assets.index.recall import ExactNeighbors
from clip_assets.index.shards import iter_vectors

DATACOMP_SMALL_VECTORS = 9_250_000
DATACOMP_INDEX_BUDGET_MIB = 16 * 1024  # IndexSettings' 16G
DATACOMP_MEMORY_MIB = 32 * 1024  # IndexSettings' 32G
TRUTH_K = 20  # 10 for recall, 20 for the intrinsic-dimension estimate
CONTENDER = Path(__file__).with_name("_index_contender.py")


def scaled(mib: int, n: int) -> str:
    """``mib`` scaled by n / DataComp small, as an autofaiss memory string."""
    return f"{int(mib * n / DATACOMP_SMALL_VECTORS)}M"


def prepare(args: argparse.Namespace, work: Path) -> dict:
    """Shards, queries and ground truth on disk; returns the contenders' config."""
    space = ClipLikeSpace(args.dim, seed=args.seed)
    tick = time.perf_counter()
    shards = list(write_shards(space, args.n, args.shard_rows, work / "embeddings", args.seed))
    print(f"{len(shards)} shards ready in {time.perf_counter() - tick:.0f} s", flush=True)
    queries = {
        "image": space.images(args.queries, (args.seed, 2)),
        "text": space.texts(args.queries, (args.seed, 4)),
    }
    np.save(work / "build_text_queries.npy", space.texts(args.build_text_queries, (args.seed, 3)))
    tick = time.perf_counter()
    truth = {
        name: ExactNeighbors(q, TRUTH_K, faiss.METRIC_INNER_PRODUCT) for name, q in queries.items()
    }
    first = None
    for first_id, vectors in iter_vectors(shards, args.dim, 65_536):
        first = vectors[:2_000] if first is None else first
        for exact in truth.values():
            exact.add(first_id, vectors)
    data: dict = {}
    for name, q in queries.items():
        ids = truth[name].result()
        np.save(work / f"{name}_queries.npy", q)
        np.save(work / f"{name}_truth.npy", ids)
        data[name] = describe_neighbours(q, truth[name].scores(), q @ first.T)
    print(f"ground truth in {time.perf_counter() - tick:.0f} s: {json.dumps(data)}", flush=True)
    return {
        "work": str(work),
        "n": args.n,
        "dim": args.dim,
        "threads": args.threads,
        "shards": [[shard.name, str(shard.path)] for shard in shards],
        "max_index_memory_usage": scaled(DATACOMP_INDEX_BUDGET_MIB, args.n),
        "current_memory_available": scaled(DATACOMP_MEMORY_MIB, args.n),
        "peer_train_vectors": args.peer_train_vectors,
        "latency_queries": args.latency_queries,
        "exact_latency_queries": args.exact_latency_queries,
        "build_text_queries": str(work / "build_text_queries.npy"),
        **{f"{name}_queries": str(work / f"{name}_queries.npy") for name in queries},
        **{f"{name}_truth": str(work / f"{name}_truth.npy") for name in queries},
        "data": data,
    }


def run_child(
    verb: str, name: str, config_path: Path, log: Path, cap_s: float | None = None
) -> dict:
    """Run one contender step; its own wall time, CPU seconds and peak RSS come back with it.

    With ``cap_s``, a step still running after that many seconds is killed and comes back as
    ``{"capped": True, ...}`` with the phase it had reached (the contender's progress.json)."""
    tick = time.perf_counter()
    with log.open("a") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(CONTENDER), verb, name, str(config_path)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        timer = threading.Timer(cap_s, child.kill) if cap_s else None
        if timer is not None:
            timer.start()
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        if timer is not None:
            timer.cancel()
    wall_s = time.perf_counter() - tick
    figures = {
        f"{verb}_wall_s": wall_s,
        f"{verb}_cpu_s": usage.ru_utime + usage.ru_stime,
        f"{verb}_peak_rss_mb": usage.ru_maxrss / 1024,
    }
    code = os.waitstatus_to_exitcode(status)
    if cap_s and code == -signal.SIGKILL and wall_s >= cap_s:
        progress_path = Path(json.loads(config_path.read_text())["work"]) / name / PROGRESS_NAME
        progress = json.loads(progress_path.read_text()) if progress_path.exists() else {}
        return {"capped": True, "cap_s": cap_s, "progress": progress, **figures}
    if code:
        raise RuntimeError(f"{verb} {name} failed ({code}); see {log}")
    return {**json.loads(out.strip().splitlines()[-1]), **figures}


COLUMNS = (
    ("index_key", "index key", "{}"),
    ("image_recall@1", "img R@1", "{:.3f}"),
    ("image_recall@10", "img R@10", "{:.3f}"),
    ("text_recall@1", "txt R@1", "{:.3f}"),
    ("text_recall@10", "txt R@10", "{:.3f}"),
    ("p50_ms", "p50 ms", "{:.3f}"),
    ("p99_ms", "p99 ms", "{:.3f}"),
    ("warm_p50_ms", "warm p50 ms", "{:.3f}"),
    ("warm_p99_ms", "warm p99 ms", "{:.3f}"),
    ("cpu_p50_ms", "p50 CPU ms", "{:.3f}"),
    ("cpu_p99_ms", "p99 CPU ms", "{:.3f}"),
    ("batch_qps", "batch QPS", "{:,.0f}"),
    ("index_mb", "index MB", "{:,.0f}"),
    ("build_wall_s", "build wall s", "{:,.0f}"),
    ("build_cpu_s", "build CPU s", "{:,.0f}"),
    ("build_peak_rss_mb", "build peak RSS MB", "{:,.0f}"),
    ("rss_anon_mb_searched", "search RSS anon MB", "{:,.0f}"),
    ("rss_file_mb_searched", "search RSS file MB", "{:,.0f}"),
    ("note", "note", "{}"),
)


def table(results: dict[str, dict]) -> str:
    """A markdown table, one row per contender."""
    lines = [
        "| contender | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "| --- " * (len(COLUMNS) + 1) + "|",
    ]
    for name, result in results.items():
        cells = [
            fmt.format(result[field]) if result.get(field) is not None else ""
            for field, _, fmt in COLUMNS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--shard-rows", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1_000, help="image and text, each")
    parser.add_argument("--build-text-queries", type=int, default=256, help="as the asset's")
    parser.add_argument("--latency-queries", type=int, default=1_000)
    parser.add_argument("--exact-latency-queries", type=int, default=20)
    parser.add_argument(
        "--exact-batch-queries",
        type=int,
        default=0,
        help="image and text queries each in exact search's batch (0 = all; brute force is slow)",
    )
    parser.add_argument("--threads", type=int, default=faiss.omp_get_max_threads())
    parser.add_argument(
        "--peer-train-vectors",
        type=int,
        default=262_144,
        help="cap on autofaiss's training set (its own rule asks 1.6M at 4M: hours); 0 = none",
    )
    parser.add_argument(
        "--autofaiss-cap-s",
        type=float,
        default=None,
        help="stop autofaiss's build after this many seconds and record the phase it reached",
    )
    parser.add_argument("--contenders", default="ours,autofaiss,exact")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()

    work = args.work / f"n{args.n}-seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.json"
    # Same n and seed: same shards, queries and truth.
    reuse = config_path.exists()
    config = json.loads(config_path.read_text()) if reuse else prepare(args, work)
    config.update(threads=args.threads, exact_batch_queries=args.exact_batch_queries)
    config_path.write_text(json.dumps(config, indent=1))
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in filter(None, args.contenders.split(",")):
        print(f"{name}: building (log: {work / f'{name}.log'})", flush=True)
        cap = args.autofaiss_cap_s if name == "autofaiss" else None
        built = run_child("build", name, config_path, work / f"{name}.log", cap)
        if built.get("capped"):
            progress = built["progress"]
            print(f"{name}: stopped at its {cap:.0f} s cap in {progress}", flush=True)
            finished = ", ".join(f"{k} {v:.0f} s" for k, v in progress.get("finished", {}).items())
            note = (
                f"stopped at the {cap:.0f} s cap in phase {progress.get('phase')} (started at "
                f"{progress.get('phase_started_s', 0):.0f} s; finished: {finished or 'none'})"
            )
            results[name] = {**built, "index_key": progress.get("key"), "note": note}
        else:
            wall = built["build_wall_s"]
            print(f"{name}: built {built['index_key']} in {wall:.0f} s", flush=True)
            searched = run_child("search", name, config_path, work / f"{name}.log")
            results[name] = {**built, **searched, "index_mb": built["index_bytes"] / 2**20}
        results_path.write_text(json.dumps({**results}, indent=1))
    print(
        f"\n{args.n:,} x {args.dim} float16 in {len(config['shards'])} shards; "
        f"max_index_memory_usage {config['max_index_memory_usage']}, current_memory_available "
        f"{config['current_memory_available']}; {args.queries} image + {args.queries} text "
        f"queries, k=10, {args.threads} faiss threads\n"
    )
    print(table(results))
    print(json.dumps({"data": config["data"], "results": results}))


if __name__ == "__main__":
    main()
