"""Our images stage vs img2dataset, same URL list, same server, same resize settings, one run.

A loopback server (its own process) answers every request after ``--latency`` seconds with one
of ``--pool`` photo-like JPEGs of web-like sizes; every URL is distinct. Both tools download
``--n`` URLs, verify SHA-256 against the list's ``sha256`` column, resize to ``--image-size``
(keep_ratio) and re-encode as JPEG quality 95, and write parquet. img2dataset runs with
``--processes`` processes at each of ``--i2d-threads`` thread counts; its best is the baseline.

Prints, per run: images/s over the whole command (spawn to exit, what a user waits for) and
over the tool's own download loop, successes, and peak memory of the process tree (PSS, pages
shared by forked workers counted once; RSS summed per process beside it).

    .venv/bin/python benchmarks/bench_download.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import _harness as h
import pyarrow.parquet as pq


@dataclass
class Result:
    """One tool run."""

    tool: str
    config: str
    n: int
    ok: int
    wall_s: float
    cpu_s: float
    inner_s: float
    peak_pss_mb: float
    peak_rss_mb: float

    def row(self) -> list[object]:
        return [
            self.tool,
            self.config,
            f"{self.n / self.wall_s:.1f}",
            f"{self.n / self.inner_s:.1f}",
            f"{self.n / self.cpu_s:.1f}",
            f"{self.ok}/{self.n}",
            f"{self.peak_pss_mb:.0f}",
            f"{self.peak_rss_mb:.0f}",
        ]


def run_ours(urls: Path, out: Path, n: int, args: argparse.Namespace, concurrency: int) -> Result:
    """Our ``download_shard_to_file`` in a child process of our venv, as the images asset
    calls it (the parquet file is written while rows download, so it counts in the loop)."""
    settings = {
        "image_size": args.image_size,
        "resize_mode": "keep_ratio",
        "encode_quality": 95,
        "encode_format": "jpg",
        "concurrency": concurrency,
        "per_host_concurrency": concurrency,  # one host serves every URL here
        "allowed_hosts": ["127.0.0.1"],
        "workers": args.processes,
        "retries": 0,  # img2dataset's default; nothing fails here anyway
    }
    cmd = [str(h.OUR_PYTHON), str(Path(__file__).with_name("_run_ours.py")), "download"]
    measured = h.run_measured([*cmd, str(urls), str(out / "images.parquet"), json.dumps(settings)])
    report = h.last_json(measured.stdout)
    return Result(
        "clip-assets",
        f"workers={args.processes} concurrency={concurrency}",
        n,
        int(report["ok"]),
        measured.wall_s,
        measured.cpu_s,
        float(report["stage_s"]),
        measured.peak_pss_mb,
        measured.peak_rss_mb,
    )


def run_img2dataset(
    urls: Path, out: Path, n: int, args: argparse.Namespace, threads: int
) -> Result:
    """img2dataset's CLI from the peers venv; ``--i2d-shard`` rows per shard."""
    shard = args.i2d_shard
    cmd = [
        str(h.PEERS_PYTHON.with_name("img2dataset")),
        f"--url_list={urls}",
        "--input_format=parquet",
        "--url_col=url",
        "--caption_col=text",
        f"--output_folder={out}",
        "--output_format=parquet",
        f"--processes_count={args.processes}",
        f"--thread_count={threads}",
        f"--number_sample_per_shard={shard}",
        f"--image_size={args.image_size}",
        "--resize_mode=keep_ratio",
        "--encode_quality=95",
        "--encode_format=jpg",
        "--verify_hash=[sha256,sha256]",
        "--retries=0",
    ]
    measured = h.run_measured(cmd)
    ok = sum(
        pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
        for p in out.glob("*.parquet")
    )
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    inner = max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)
    return Result(
        "img2dataset",
        f"processes={args.processes} threads={threads} shard={shard}",
        n,
        ok,
        measured.wall_s,
        measured.cpu_s,
        inner,
        measured.peak_pss_mb,
        measured.peak_rss_mb,
    )


def report_ratio(results: list[Result], label: str) -> None:
    """Our best config against img2dataset's best, by whole-command images/s."""
    best = {
        tool: max((r for r in results if r.tool == tool), key=lambda r: r.n / r.wall_s)
        for tool in {r.tool for r in results}
    }
    if len(best) == 2:
        ours, peer = best["clip-assets"], best["img2dataset"]
        print(
            f"\n{label}: clip-assets / img2dataset (best configs): "
            f"{peer.wall_s / ours.wall_s:.2f}x images/s whole command, "
            f"{peer.inner_s / ours.inner_s:.2f}x download loop, "
            f"{peer.cpu_s / ours.cpu_s:.2f}x images per CPU-second; "
            f"successes {ours.ok} vs {peer.ok}; "
            f"peak PSS {ours.peak_pss_mb:.0f} vs {peer.peak_pss_mb:.0f} MB"
        )


def report_marginal(results: list[Result], n: int, n2: int) -> None:
    """Per config, the cost of the N2 - N extra images: (N2 - N) / (wall2 - wall1) and per
    CPU-second likewise, which cancels start-up (imports, process pools) on both sides."""
    rows, marginal = [], {}
    for small in (r for r in results if r.n == n):
        big = next(
            r for r in results if r.n == n2 and (r.tool, r.config) == (small.tool, small.config)
        )
        img_s = (n2 - n) / (big.wall_s - small.wall_s)
        img_cpu = (n2 - n) / (big.cpu_s - small.cpu_s)
        rows.append([small.tool, small.config, f"{img_s:.1f}", f"{img_cpu:.1f}"])
        best = marginal.get(small.tool)
        if best is None or img_s > best[0]:
            marginal[small.tool] = (img_s, img_cpu)
    print(f"\nmarginal cost of images {n + 1} to {n2} (start-up cancelled out):")
    print(h.table(rows, ["tool", "config", "img/s", "img/CPU-s"]))
    if len(marginal) == 2:
        ours, peer = marginal["clip-assets"], marginal["img2dataset"]
        print(
            f"marginal: clip-assets / img2dataset (best configs): {ours[0] / peer[0]:.2f}x "
            f"images/s, {ours[1] / peer[1]:.2f}x images per CPU-second"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="URLs to download")
    parser.add_argument("--latency", type=float, default=0.1, help="server delay per request, s")
    parser.add_argument("--pool", type=int, default=500, help="distinct images served")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--processes", type=int, default=2, help="worker processes, both tools")
    parser.add_argument("--i2d-threads", default="32,64,128", help="img2dataset thread counts")
    parser.add_argument(
        "--i2d-shard",
        type=int,
        default=250,
        help="img2dataset rows per shard: small enough that each process gets several",
    )
    parser.add_argument("--our-concurrency", default="64", help="our in-flight request limits")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this script, the server and both tools (negative needs root): "
        "keeps other work on a shared machine from skewing the comparison",
    )
    parser.add_argument(
        "--n2",
        type=int,
        help="also run every config on N2 other URLs and print the marginal cost of the extra "
        "N2 - N images: steady-state figures with every fixed start-up cost cancelled out",
    )
    parser.add_argument("--skip-ours", action="store_true", help="peer side only")
    parser.add_argument("--skip-peer", action="store_true", help="our side only")
    parser.add_argument("--keep", type=Path, help="keep outputs in this folder")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # inherited by every child: server and both tools alike

    pool = h.image_pool(args.pool)
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.keep))
    results: list[Result] = []
    sizes = [args.n] if args.n2 is None else [args.n, args.n2]
    with h.ServerProcess(pool, args.latency) as server:
        lists = {}
        for n in sizes:
            lists[n] = work / f"urls-{n}.parquet"
            first = 0 if n == args.n else args.n  # the second list shares no URL with the first
            h.write_url_list(lists[n], [server.url(first + i) for i in range(n)], pool)
        runs = [] if args.skip_ours else [("ours", int(c)) for c in args.our_concurrency.split(",")]
        if not args.skip_peer:
            runs += [("img2dataset", int(t)) for t in args.i2d_threads.split(",")]
        for tool, knob in runs:
            for n in sizes:
                out = work / f"{tool}-{knob}-{n}"
                out.mkdir()
                run = run_ours if tool == "ours" else run_img2dataset
                results.append(run(lists[n], out, n, args, knob))
                print(h.table([results[-1].row()], HEADER).splitlines()[-1], flush=True)

    print(
        f"\nlatency {args.latency * 1000:.0f} ms, pool {args.pool} images, "
        f"image_size {args.image_size} keep_ratio jpg q95, sha256 verified"
    )
    print(h.table([r.row() for r in results], HEADER))
    report_ratio([r for r in results if r.n == args.n], f"N={args.n}")
    if args.n2 is not None:
        report_marginal(results, args.n, args.n2)
    if args.keep is None:
        shutil.rmtree(work)


HEADER = ["tool", "config", "img/s", "img/s loop", "img/CPU-s", "ok", "peak PSS MB", "peak RSS MB"]

if __name__ == "__main__":
    main()
