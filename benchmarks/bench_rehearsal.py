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
for a machine that cannot finish the run in the time at hand; the same command with
``--resume`` goes on from there (the daemon carries on with the backfill, finished partitions
are not redone) and reports the whole run, the seconds between the segments left out.

    python benchmarks/bench_rehearsal.py                       # 200,000 rows, tiny model, CPU
    python benchmarks/bench_rehearsal.py --rows 1000000
    python benchmarks/bench_rehearsal.py --model ViT-B-32 --device cuda
    python benchmarks/bench_rehearsal.py --partitions 2560     # 4 rows each
    python benchmarks/bench_rehearsal.py --partitions 2560 --budget 900
    python benchmarks/bench_rehearsal.py --partitions 2560 --resume   # and on to the end

A benchmark, not a test: nothing here runs in CI. Every address it serves or fetches is loopback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import signal
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
    RunFacts,
    download_outcome,
    event_log_bytes,
    overhead,
    read_runs,
    stage_figures,
    storage_per_row,
)
from _rehearsal_source import crawl_pool, pool_items, write_source
from dagster import DagsterInstance

from clip_assets.atomic_files import replacing
from clip_assets.offline.weights import install_pretrained_standin, install_tiny_model

DATASET = "rehearsal"
#: The resumable state, in the work folder.
STATE = "rehearsal-state.json"


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
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the rehearsal stopped in the work folder (its source, data and Dagster "
        "instance), by the same command plus --resume: finished partitions are not redone",
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


def _wait(what: str, check, deadline: float, every: float, partial: bool, beat) -> Any:
    """``check()``'s first truthy value; past ``deadline`` None if ``partial``, else raises.
    ``beat()`` runs at every check (the resumable state's heartbeat)."""
    while time.time() < deadline:
        beat()
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


class RehearsalState:
    """What a rehearsal keeps in ``<work>/rehearsal-state.json`` so ``--resume`` can go on
    after a stop (``--budget``, a kill, the end of a session): the settings that shaped the
    source, the loopback web's port its URLs name, the launch, the backfills, and one segment
    per time the rehearsal ran, with a heartbeat and, for a segment that ended cleanly, its CPU
    figures (a killed segment's are lost; its rows and stage seconds are in the event log)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> RehearsalState:
        if not path.exists():
            raise SystemExit(f"--resume: no {path}: start a rehearsal in {path.parent} first")
        return cls(path, json.loads(path.read_text()))

    def save(self) -> None:
        with replacing(self.path) as partial:
            partial.write_text(json.dumps(self.data, indent=1))

    def begin_segment(self) -> dict[str, Any]:
        now = time.time()
        segment = {"start": now, "seen": now}
        self.data.setdefault("segments", []).append(segment)
        self.save()
        return segment

    def beat(self) -> None:
        self.data["segments"][-1]["seen"] = time.time()
        self.save()

    def active_s(self, until: float) -> float:
        """Seconds the rehearsal ran between its launch and ``until``, the stops left out."""
        total = 0.0
        for segment in self.data["segments"]:
            start = max(segment["start"], self.data["launch"])
            end = min(segment.get("end", segment["seen"]), until)
            total += max(0.0, end - start)
        return total

    def stopped(self, run: RunFacts) -> bool:
        """Whether ``run`` ended (or would have gone on) only because a segment stopped: it was
        created before a stop and ended between that stop and a few minutes into the next
        segment (run monitoring marks a dead worker's run failed), or it had not ended when the
        last segment stopped."""
        segments = self.data["segments"]
        if run.status == "SUCCESS":
            return False
        ended = run.times.get("end")
        if ended is None:
            return True
        for before, after in itertools.pairwise(segments):
            stop = before.get("end", before["seen"])
            if run.times["created"] < stop and stop - 5 <= ended <= after["start"] + 900:
                return True
        return False


#: Arguments that shape the source and the web: a resumed rehearsal takes them from its state.
_SHAPING = ("rows", "rows_per_partition", "partitions", "files", "hosts", "pictures", "latency")


def _start_web(args: argparse.Namespace, port: int) -> tuple[subprocess.Popen[str], dict]:
    web = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parent / "_loopback_web.py"),
            str(crawl_pool(args.pictures)),
            str(args.hosts),
            str(args.latency),
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert web.stdout is not None
    line = web.stdout.readline()
    if not line:
        raise RuntimeError(f"the loopback web did not start (port {port or 'any'} taken?)")
    return web, json.loads(line)


def _environment(args: argparse.Namespace, work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "CLIP_ASSETS_DATASETS": str(work / "datasets.yaml"),
        "CLIP_ASSETS_ROOT": str(work / "data"),
        "CLIP_ASSETS_DEVICE": args.device,
        **({"CLIP_ASSETS_EXECUTOR": args.executor} if args.executor else {}),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **_model_env(args, work),
    }


def _fresh_state(args: argparse.Namespace) -> RehearsalState:
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    (work / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    settings = {name: getattr(args, name) for name in _SHAPING}
    return RehearsalState(work / STATE, {"settings": settings, "segments": []})


def _write_source(args: argparse.Namespace, state: RehearsalState, served: dict) -> None:
    work = args.work
    started = time.time()
    kinds = write_source(
        work / "source",
        args.rows,
        args.files,
        pool_items(crawl_pool(args.pictures)),
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
    state.data.update(port=served["port"], source_kinds=kinds)
    print(
        f"source: {args.rows} rows, {args.files} files, {time.time() - started:.0f}s: {kinds}",
        flush=True,
    )


def _discover_and_launch(
    dev: DagsterDev, instance: DagsterInstance, state: RehearsalState, deadline: float
) -> str:
    """Turns discovery on, waits for every partition, launches "Materialize all partitions"."""
    work = state.path.parent
    dev.start_sensor(f"{DATASET}_discover_shards")
    name = f"{DATASET}_shards"
    discovered = time.time()
    beat = state.beat
    _wait("discovery", lambda: instance.get_dynamic_partitions(name), deadline, 2, False, beat)
    # The sensor saves the manifest, then adds every slice in one tick.
    manifest = work / "data" / DATASET / "source" / "partitions.json"
    expected = len(json.loads(manifest.read_text()))
    _wait(
        "all partitions",
        lambda: len(instance.get_dynamic_partitions(name)) >= expected,
        deadline,
        2,
        False,
        beat,
    )
    state.data["discovery_s"] = round(time.time() - discovered, 1)
    state.data["launch"] = time.time()
    state.data["segments"][-1]["start"] = state.data["launch"]
    backfill_id = dev.launch_backfill([[DATASET, stage] for stage in PARTITIONED])
    state.data["backfills"] = [backfill_id]
    state.save()
    return backfill_id


def _current_backfill(dev: DagsterDev, state: RehearsalState) -> str:
    """A resumed rehearsal waits on its backfill, which the daemon goes on with; one that
    failed or was canceled with the last segment is launched again: finished partitions are
    skipped, not redone."""
    backfill_id = state.data["backfills"][-1]
    if dev.backfill(backfill_id)["status"] not in ("FAILED", "CANCELED", "COMPLETED_FAILED"):
        return backfill_id
    backfill_id = dev.launch_backfill([[DATASET, stage] for stage in PARTITIONED])
    state.data["backfills"].append(backfill_id)
    state.save()
    return backfill_id


def rehearse(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work
    if args.resume:
        state = RehearsalState.load(work / STATE)
        if "launch" not in state.data:
            raise SystemExit(f"--resume: {work} stopped before its launch: start it again")
        for name, value in state.data["settings"].items():
            setattr(args, name, value)
    else:
        state = _fresh_state(args)
    segment = state.begin_segment()
    web, served = _start_web(args, state.data.get("port", 0))
    try:
        if not args.resume:
            _write_source(args, state, served)
        deadline = time.time() + args.timeout
        with (
            DagsterDev(_environment(args, work), work / "dagster-dev.log") as dev,
            ProcessProbe(dev.process.pid, {"loopback web": web.pid}) as probe,
        ):
            load_s = dev.wait_for_asset([DATASET, "embeddings"])
            print(f"dagster dev up in {load_s:.0f}s (port {dev.port})", flush=True)
            instance = DagsterInstance.from_config(str(work / "dagster_home"))
            if args.resume:
                backfill_id = _current_backfill(dev, state)
            else:
                backfill_id = _discover_and_launch(dev, instance, state, deadline)
            launch = state.data["launch"]
            partitions = list(instance.get_dynamic_partitions(f"{DATASET}_shards"))
            print(f"{len(partitions)} partitions; backfill {backfill_id}", flush=True)

            def backfill_done():
                answer = dev.backfill(backfill_id)
                return answer if answer["status"] not in ("REQUESTED",) else None

            partial = args.budget is not None
            until = min(deadline, segment["start"] + args.budget) if partial else deadline
            backfill = _wait("the backfill", backfill_done, until, 10, partial, state.beat)
            backfill_end = time.time() if backfill else None
            backfill = backfill or dev.backfill(backfill_id)
            print(f"backfill {backfill['status']} {time.time() - launch:.0f}s in", flush=True)
            release = backfill_end and _wait(
                "automation to build the release",
                lambda: _whole_materializations(instance, launch)["hf_release"],
                until,
                10,
                partial,
                state.beat,
            )
            release_at = release[0] if release else None
            if release:
                print(f"release built {release_at - launch:.0f}s after launch", flush=True)
                time.sleep(75)  # two rebuild evaluations: a second build would have started
            health, keys = dev.partition_health_s([DATASET, "embeddings"])
            discovery_ticks = dev.sensor(f"{DATASET}_discover_shards")["ticks"]
            rebuild_ticks = dev.sensor(f"{DATASET}_rebuild_index")["ticks"]
            probe.sample()
            segment["end"] = segment["seen"] = time.time()
        runs = read_runs(instance, launch - 1)
        whole = _whole_materializations(instance, launch)
        probe.name_run_workers({run.pid for run in runs if run.pid is not None})
    finally:
        web.terminate()
        web.wait(timeout=30)
    first_backfill = state.data["backfills"][0]
    submitted = [
        r.times["created"] for r in runs if r.tags.get("dagster/backfill") == first_backfill
    ]
    stages = stage_figures(runs, probe)
    segment["stage_cpu_s"] = {stage: row["cpu_s"] for stage, row in stages.items()}
    segment["stage_peak_run_mb"] = {stage: row["peak_run_mb"] for stage, row in stages.items()}
    segment["processes"] = probe.by_kind()
    state.save()
    stages = _with_earlier_segments(stages, state)
    by_kind = _merged_processes(state)
    ours = sum(row["cpu_s"] for kind, row in by_kind.items() if kind != "loopback web")
    root = work / "data" / DATASET
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
        "source_kinds": state.data["source_kinds"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_end": os.getloadavg(),
        "dagster_dev_load_s": round(load_s, 1),
        "discovery_s": state.data["discovery_s"],
        # Seconds the rehearsal ran (stops between --resume segments left out).
        "segments": [
            round(s.get("end", s["seen"]) - max(s["start"], launch), 1)
            for s in state.data["segments"]
        ],
        "segments_without_cpu": sum(1 for s in state.data["segments"] if "processes" not in s),
        "backfills": state.data["backfills"],
        "backfill_status": backfill["status"],
        "backfill_s": round(state.active_s(backfill_end), 1) if backfill_end else None,
        "launch_to_release_s": round(state.active_s(release_at), 1) if release_at else None,
        # A partial run (--budget): how far it got in how long.
        "completed": release_at is not None,
        "waited_s": round(state.active_s(time.time()), 1),
        "partitions_embedded": len(
            list((work / "data" / DATASET / "embeddings").glob("*.parquet"))
        ),
        "whole_dataset_builds": {stage: len(times) for stage, times in whole.items()},
        "index_build_runs": sum(1 for r in runs if "clip_assets/index_build" in r.tags),
        # Backfill planning: how long the daemon took to submit every partition run.
        "backfill_submitted_s": round(max(submitted, default=launch) - launch, 1),
        "partition_runs": sum(1 for r in runs if "clip_assets/index_build" not in r.tags),
        "failed_runs": [r.run_id for r in runs if r.status != "SUCCESS" and not state.stopped(r)],
        "runs_ended_by_a_stop": [r.run_id for r in runs if state.stopped(r)],
        "stages": stages,
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


def _with_earlier_segments(
    stages: dict[str, dict[str, float]], state: RehearsalState
) -> dict[str, dict[str, float]]:
    """This segment's stage figures (rows and stage seconds from the whole event log, CPU and
    memory from this segment's probe) with what the earlier segments' probes measured: CPU
    added, peak memory the largest."""
    for segment in state.data["segments"][:-1]:
        for stage, cpu_s in segment.get("stage_cpu_s", {}).items():
            row = stages.setdefault(stage, {"cpu_s": 0.0})
            row["cpu_s"] = round(row.get("cpu_s", 0.0) + cpu_s, 3)
            rows = row.get("rows_in", 0.0)
            row["cpu_s_per_1000_rows"] = round(1000 * row["cpu_s"] / rows, 3) if rows else 0.0
        for stage, peak_mb in segment.get("stage_peak_run_mb", {}).items():
            row = stages.setdefault(stage, {"cpu_s": 0.0})
            row["peak_run_mb"] = max(row.get("peak_run_mb", 0.0), peak_mb)
    return stages


def _merged_processes(state: RehearsalState) -> dict[str, dict[str, float]]:
    """Per process kind over the segments that ended cleanly: CPU and process counts added,
    peaks the largest."""
    merged: dict[str, dict[str, float]] = {}
    for segment in state.data["segments"]:
        for kind, row in segment.get("processes", {}).items():
            into = merged.setdefault(kind, dict.fromkeys(row, 0.0))
            for key, value in row.items():
                added = max(into[key], value) if key.startswith("peak") else into[key] + value
                into[key] = round(added, 1)
    return merged


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
                round(figures.get("peak_run_mb", 0)),
                report["storage_bytes_per_row"].get(
                    {"faiss_index": "index", "hf_release": "release"}.get(stage, stage), ""
                ),
            ]
        )
    header = [
        "stage",
        "rows",
        "stage s",
        "step s",
        "rows/s",
        "CPU s",
        "CPU s/1k rows",
        "peak run MB",
        "bytes/row",
    ]
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
    if len(report["segments"]) > 1:
        lines.append(
            f"resumed: segments of {report['segments']} s (the stops between them left out), "
            f"{len(report['runs_ended_by_a_stop'])} runs ended by a stop, "
            f"{len(report['failed_runs'])} failed on their own"
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


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the ``with`` blocks: dagster dev's process group and the loopback web
    # stop instead of being left running when the rehearsal is killed.
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = _arguments()
    report = rehearse(args)
    print(summary(report))
    line = json.dumps(report, sort_keys=True)
    if args.json:
        args.json.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
