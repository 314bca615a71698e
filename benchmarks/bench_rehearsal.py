"""Web scale on one machine: a DataComp-like dataset through ``dagster dev``, as a user runs it.

One command generates a DataComp-schema source (``--rows``, several files, ``rows_per_partition``
50,000), registers it in a registry file, serves its URLs from a loopback web of many hosts with
latency, crawl-like images and DataComp-like failures (``_loopback_web.py``), starts ``dagster
dev`` with the project's ``dagster.yaml`` and a persistent ``DAGSTER_HOME``, turns the dataset's
discovery sensor on, launches the backfill as the UI's "Materialize all partitions" does
(``launchPartitionBackfill``), waits for it and for automation to build ``faiss_index``,
``id_mapping`` and ``hf_release``, then prints a summary table and one JSON line.

``--partitions N`` is the partition-count rehearsal instead: N tiny partitions (DataComp medium
has 2,560) through the same path, timing the UI's partition health query. ``--budget S`` stops
waiting S seconds after the launch and reports what finished by then (``completed: false``),
for a machine that cannot finish the run in the time at hand.

    python benchmarks/bench_rehearsal.py                       # 200,000 rows, tiny model, CPU
    python benchmarks/bench_rehearsal.py --rows 1000000
    python benchmarks/bench_rehearsal.py --model ViT-B-32 --device cuda
    python benchmarks/bench_rehearsal.py --partitions 2560     # 4 rows each
    python benchmarks/bench_rehearsal.py --partitions 2560 --budget 900

A benchmark, not a test: nothing here runs in CI. Every address it serves or fetches is loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _dagster_dev import REPO, DagsterDev
from _harness import table
from _rehearsal_probe import ProcessProbe
from _rehearsal_report import (
    PARTITIONED,
    WHOLE,
    download_outcome,
    event_log_bytes,
    overhead,
    read_runs,
    stage_figures,
    storage_per_row,
)
from _rehearsal_source import crawl_pool, pool_items, write_source
from dagster import DagsterInstance

from clip_assets.offline.weights import install_pretrained_standin, install_tiny_model

DATASET = "rehearsal"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--rows-per-partition", type=int, default=None, help="50,000; 4 with --partitions"
    )
    parser.add_argument("--partitions", type=int, default=None, help="partition-count rehearsal")
    parser.add_argument(
        "--files", type=int, default=None, help="source files (default: rows/70k, at least 3)"
    )
    parser.add_argument("--hosts", type=int, default=32, help="loopback hosts serving the URLs")
    parser.add_argument(
        "--pictures",
        type=int,
        default=8_000,
        help="distinct pictures the web serves (400 made 400 copies of each at 160k ok rows: "
        "an HNSW graph that links only copies, which no crawl gives)",
    )
    parser.add_argument("--latency", type=float, default=0.08, help="median seconds per request")
    parser.add_argument("--model", default="tiny", help="tiny (stand-in) or an open_clip name")
    parser.add_argument(
        "--pretrained", default="laion2b_s34b_b79k", help="tag whose stand-in is written"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--executor", default=None, help="CLIP_ASSETS_EXECUTOR for the runs (default: Dagster's)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="default /tmp/clip-assets-rehearsal/<name>"
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds for the whole run")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds after the launch to stop waiting and report what finished (partial run)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args()
    if args.partitions:
        args.rows_per_partition = args.rows_per_partition or 4
        args.rows = args.partitions * args.rows_per_partition
    args.rows_per_partition = args.rows_per_partition or 50_000
    args.files = args.files or (
        max(1, args.partitions // 10) if args.partitions else max(3, args.rows // 70_000)
    )
    name = f"partitions-{args.partitions}" if args.partitions else f"rows-{args.rows}"
    args.work = args.work or Path("/tmp/clip-assets-rehearsal") / name
    return args


def _model_env(args: argparse.Namespace, work: Path) -> dict[str, str]:
    if args.model == "tiny":
        return {
            "CLIP_ASSETS_MODEL": install_tiny_model(work / "model"),
            "CLIP_ASSETS_PRETRAINED": "none",
        }
    install_pretrained_standin(work / "hf_home", args.model, args.pretrained)
    return {
        "CLIP_ASSETS_MODEL": args.model,
        "CLIP_ASSETS_PRETRAINED": args.pretrained,
        "HF_HOME": str(work / "hf_home"),
        "HF_HUB_OFFLINE": "1",
    }


def _wait(what: str, check, deadline: float, every: float = 5.0, partial: bool = False) -> Any:
    """``check()``'s first truthy value; past ``deadline`` None if ``partial``, else raises."""
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    if partial:
        return None
    raise TimeoutError(f"timed out waiting for {what}")


def _whole_materializations(instance: DagsterInstance, after: float) -> dict[str, list[float]]:
    from dagster import AssetKey, AssetRecordsFilter

    out = {}
    for stage in WHOLE:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey([DATASET, stage]), after_timestamp=after),
            limit=50,
        ).records
        out[stage] = sorted(r.timestamp for r in records)
    return out


def rehearse(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    (work / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    pool = pool_items(crawl_pool(args.pictures))
    log = work / "dagster-dev.log"
    web = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "_loopback_web.py"),
            str(crawl_pool(args.pictures)),
            str(args.hosts),
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert web.stdout is not None
        served = json.loads(web.stdout.readline())
        started = time.time()
        kinds = write_source(
            work / "source",
            args.rows,
            args.files,
            pool,
            served["port"],
            served["hosts"],
            uneven=not args.partitions,
        )
        hosts = ", ".join(["127.0.0.1", *served["hosts"]])
        (work / "datasets.yaml").write_text(
            f"datasets:\n  - name: {DATASET}\n    source: {work / 'source'}\n"
            f"    rows_per_partition: {args.rows_per_partition}\n    allowed_hosts: [{hosts}]\n"
            "    run_on_discovery: false\n"
        )
        env = {
            **os.environ,
            "DAGSTER_HOME": str(work / "dagster_home"),
            "CLIP_ASSETS_DATASETS": str(work / "datasets.yaml"),
            "CLIP_ASSETS_ROOT": str(work / "data"),
            "CLIP_ASSETS_DEVICE": args.device,
            **({"CLIP_ASSETS_EXECUTOR": args.executor} if args.executor else {}),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **_model_env(args, work),
        }
        print(
            f"source: {args.rows} rows, {args.files} files, {time.time() - started:.0f}s: {kinds}",
            flush=True,
        )
        deadline = time.time() + args.timeout
        with (
            DagsterDev(env, log) as dev,
            ProcessProbe(dev.process.pid, {"loopback web": web.pid}) as probe,
        ):
            load_s = dev.wait_for_asset([DATASET, "embeddings"])
            print(f"dagster dev up in {load_s:.0f}s (port {dev.port})", flush=True)
            instance = DagsterInstance.from_config(str(work / "dagster_home"))
            dev.start_sensor(f"{DATASET}_discover_shards")
            name = f"{DATASET}_shards"
            discovered = time.time()
            _wait("discovery", lambda: instance.get_dynamic_partitions(name), deadline, every=2)
            # The sensor saves the manifest, then adds every slice in one tick.
            manifest = work / "data" / DATASET / "source" / "partitions.json"
            expected = len(json.loads(manifest.read_text()))
            _wait(
                "all partitions",
                lambda: len(instance.get_dynamic_partitions(name)) >= expected,
                deadline,
                every=2,
            )
            partitions = list(instance.get_dynamic_partitions(name))
            discovery_s = time.time() - discovered
            launch = time.time()
            backfill_id = dev.launch_backfill([[DATASET, stage] for stage in PARTITIONED])
            print(f"{len(partitions)} partitions; backfill {backfill_id} launched", flush=True)

            def backfill_done():
                state = dev.backfill(backfill_id)
                return state if state["status"] not in ("REQUESTED",) else None

            partial = args.budget is not None
            until = min(deadline, launch + args.budget) if partial else deadline
            backfill = _wait("the backfill", backfill_done, until, 10, partial)
            backfill_end = time.time() if backfill else None
            backfill = backfill or dev.backfill(backfill_id)
            print(f"backfill {backfill['status']} {time.time() - launch:.0f}s in", flush=True)
            release = backfill_end and _wait(
                "automation to build the release",
                lambda: _whole_materializations(instance, launch)["hf_release"],
                until,
                10,
                partial,
            )
            release_at = release[0] if release else None
            if release:
                print(f"release built {release_at - launch:.0f}s after launch", flush=True)
                time.sleep(75)  # two rebuild evaluations: a second build would have started
            waited_s = time.time() - launch
            health, keys = dev.partition_health_s([DATASET, "embeddings"])
            discovery_ticks = dev.sensor(f"{DATASET}_discover_shards")["ticks"]
            rebuild_ticks = dev.sensor(f"{DATASET}_rebuild_index")["ticks"]
            probe.sample()
        runs = read_runs(instance, launch - 1)
        whole = _whole_materializations(instance, launch)
        probe.name_run_workers({run.pid for run in runs if run.pid is not None})
    finally:
        web.terminate()
        web.wait(timeout=30)
    root = work / "data" / DATASET
    by_kind = probe.by_kind()
    ours = sum(row["cpu_s"] for kind, row in by_kind.items() if kind != "loopback web")
    return {
        "bench": "rehearsal",
        "mode": "partition_count" if args.partitions else "rows",
        "rows": args.rows,
        "rows_per_partition": args.rows_per_partition,
        "files": args.files,
        "partitions": len(partitions),
        "model": args.model,
        "device": args.device,
        "executor": args.executor or "default (multiprocess)",
        "latency_s": args.latency,
        "hosts": args.hosts,
        "pictures": args.pictures,
        "source_kinds": kinds,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_end": os.getloadavg(),
        "dagster_dev_load_s": round(load_s, 1),
        "discovery_s": round(discovery_s, 1),
        "backfill_status": backfill["status"],
        "backfill_s": round(backfill_end - launch, 1) if backfill_end else None,
        "launch_to_release_s": round(release_at - launch, 1) if release_at else None,
        # A partial run (--budget): how far it got in how long.
        "completed": release_at is not None,
        "waited_s": round(waited_s, 1),
        "partitions_embedded": len(
            list((work / "data" / DATASET / "embeddings").glob("*.parquet"))
        ),
        "whole_dataset_builds": {stage: len(times) for stage, times in whole.items()},
        "index_build_runs": sum(1 for r in runs if "clip_assets/index_build" in r.tags),
        # Backfill planning: how long the daemon took to submit every partition run.
        "backfill_submitted_s": round(
            max((r.times["created"] for r in runs if "dagster/backfill" in r.tags), default=launch)
            - launch,
            1,
        ),
        "partition_runs": sum(1 for r in runs if "clip_assets/index_build" not in r.tags),
        "failed_runs": [r.run_id for r in runs if r.status != "SUCCESS"],
        "stages": stage_figures(runs, probe),
        "overhead": overhead(runs),
        "processes": by_kind,
        "loopback_web_cpu_share": round(
            by_kind.get("loopback web", {}).get("cpu_s", 0)
            / max(1e-9, ours + by_kind.get("loopback web", {}).get("cpu_s", 0)),
            3,
        ),
        "storage_bytes_per_row": storage_per_row(root, args.rows),
        "instance_bytes": event_log_bytes(work / "dagster_home"),
        "partition_health_query_s": [round(t, 3) for t in health],
        "partition_health_keys": keys,
        "discovery_tick_s": _tick_seconds(discovery_ticks),
        "rebuild_tick_s": _tick_seconds(rebuild_ticks),
        "download": download_outcome(root / "images") if (root / "images").exists() else {},
    }


def _tick_seconds(ticks: list[dict[str, Any]]) -> dict[str, float]:
    spans = sorted(t["endTimestamp"] - t["timestamp"] for t in ticks if t.get("endTimestamp"))
    if not spans:
        return {}
    return {
        "ticks": len(spans),
        "median": round(spans[len(spans) // 2], 3),
        "max": round(spans[-1], 3),
    }


def summary(report: dict[str, Any]) -> str:
    rows = []
    for stage in (*PARTITIONED, *WHOLE):
        figures = report["stages"].get(stage, {})
        rows.append(
            [
                stage,
                int(figures.get("rows_in", 0)),
                round(figures.get("stage_s", 0), 1),
                round(figures.get("step_wall_s", 0), 1),
                round(figures.get("rows_per_s", 0), 1),
                round(figures.get("cpu_s", 0), 1),
                round(figures.get("cpu_s_per_1000_rows", 0), 2),
                report["storage_bytes_per_row"].get(
                    {"faiss_index": "index", "hf_release": "release"}.get(stage, stage), ""
                ),
            ]
        )
    header = ["stage", "rows", "stage s", "step s", "rows/s", "CPU s", "CPU s/1k rows", "bytes/row"]
    lines = [table(rows, header), ""]
    memory = [
        [kind, int(r["processes"]), r["peak_rss_mb"], r["peak_sum_mb"], r["cpu_s"]]
        for kind, r in sorted(report["processes"].items())
    ]
    lines += [
        table(memory, ["process kind", "processes", "peak RSS MB", "peak sum MB", "CPU s"]),
        "",
    ]
    for name, f in report["overhead"].items():
        lines.append(
            f"{name} runs: {f['runs']}; queue wait {f['queue_wait_s']}; start-up "
            f"{f['start_up_s']}; bookkeeping {f['bookkeeping_s']} "
            f"({f['bookkeeping_s_per_partition']} s/partition)"
        )
    per_partition = report["instance_bytes"]["history"] / max(1, report["partitions"]) / 1e3
    lines.append(
        f"launch -> release {report['launch_to_release_s']} s (backfill "
        f"{report['backfill_s']} s); whole-dataset builds {report['whole_dataset_builds']}; "
        f"event log {per_partition:.1f} kB/partition; partition health query "
        f"{report['partition_health_query_s']} s for {report['partition_health_keys']} keys; "
        f"loopback web CPU share {report['loopback_web_cpu_share']:.1%}"
    )
    if not report["completed"]:
        lines.append(
            f"partial (--budget): {report['partitions_embedded']}/{report['partitions']} "
            f"partitions embedded {report['waited_s']} s after the launch"
        )
    download = report["download"]
    if download:
        lines.append(f"success rate {download['success_rate']:.1%}; reasons {download['reasons']}")
    return "\n".join(lines)


def main() -> None:
    args = _arguments()
    report = rehearse(args)
    print(summary(report))
    line = json.dumps(report, sort_keys=True)
    if args.json:
        args.json.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
