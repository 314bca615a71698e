"""One partition's images stage against the rehearsal's loopback web, without Dagster.

Serves ``--rows`` URLs from ``_loopback_web.py`` (crawl-like images, DataComp-like failures,
``--latency`` per request) and runs ``download_shard_to_file`` on them as the images asset does,
at the default ``DownloadSettings``. ``--no-slow`` drops the URLs that stay silent past the read
timeout; ``--row-group-rows`` narrows the reorder window (4 row groups) to model a partition many
windows long with a short run. Prints one JSON line: rows/s, CPU seconds of this process and its
download workers, successes, peak RSS.

    python benchmarks/bench_partition_download.py --rows 8000
    python benchmarks/bench_partition_download.py --rows 4000 --row-group-rows 128

A benchmark, not a test: nothing here runs in CI. Every address it serves or fetches is loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _rehearsal_source as source
import pyarrow.parquet as pq

from clip_assets.download.download_settings import DownloadSettings
from clip_assets.download.shard_download import ROW_GROUP_ROWS, download_shard_to_file


def _cpu_s() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.08)
    parser.add_argument("--no-slow", action="store_true", help="no URLs silent past the timeout")
    parser.add_argument("--row-group-rows", type=int, default=ROW_GROUP_ROWS)
    args = parser.parse_args()
    if args.no_slow:
        source.KINDS = {kind: share for kind, share in source.KINDS.items() if kind != "slow"}
    pool = source.crawl_pool()
    web_script = Path(__file__).parent / "_loopback_web.py"
    command = [sys.executable, str(web_script), str(pool), str(args.hosts), str(args.latency)]
    web = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert web.stdout is not None
        served = json.loads(web.stdout.readline())
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            items = source.pool_items(pool)
            kinds = source.write_source(
                work / "source", args.rows, 1, items, served["port"], served["hosts"]
            )
            metadata = pq.read_table(next((work / "source").glob("*.parquet")))
            settings = DownloadSettings(allow_private_addresses=True)
            started, cpu = time.monotonic(), _cpu_s()
            download_shard_to_file(
                metadata, settings, work / "images.parquet", row_group_rows=args.row_group_rows
            )
            wall, cpu = time.monotonic() - started, _cpu_s() - cpu
            statuses = pq.read_table(work / "images.parquet", columns=["status"])["status"]
            ok = statuses.to_pylist().count("ok")
    finally:
        web.terminate()
        web.wait(timeout=30)
    report = {
        "bench": "partition_download",
        "rows": args.rows,
        "slow_urls": kinds.get("slow", 0),
        "row_group_rows": args.row_group_rows,
        "wall_s": round(wall, 1),
        "rows_per_s": round(args.rows / wall, 1),
        "cpu_s": round(cpu, 1),
        "rows_per_cpu_s": round(args.rows / cpu, 1),
        "ok": ok,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
