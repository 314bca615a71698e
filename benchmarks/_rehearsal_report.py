"""The rehearsal's figures, read afterwards from the Dagster instance, the storage root and the
process probe: per stage throughput and CPU, Dagster's own overhead, memory per process kind,
storage per row, event-log size per partition, and the download outcome.

Definitions (the README and docs/scaling.md quote them):

- stage seconds: ``stage_s`` of each partition's materialization (time inside the stage
  function for that partition); for a whole-dataset stage, its step's wall time;
- step CPU: CPU seconds of the run's process tree (worker, step process, download workers)
  between the step's start and end events; peak run memory: the most RSS that tree held at
  once in that window, the largest over the stage's steps;
- queue wait: run enqueued -> starting (the run queue, tag limits); start-up: starting ->
  the worker's RUN_START (process spawn, code load); bookkeeping: the run's wall time
  (RUN_START -> end) minus the stage seconds of everything it ran (step processes' start-up,
  resource set-up such as loading the model, event writes).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads
from _rehearsal_probe import ProcessProbe
from dagster import DagsterEventType, DagsterInstance, RunsFilter

PARTITIONED = ("metadata", "images", "embeddings")
WHOLE = ("faiss_index", "id_mapping", "hf_release")
_MARKS = (
    DagsterEventType.RUN_ENQUEUED,
    DagsterEventType.RUN_DEQUEUED,
    DagsterEventType.RUN_STARTING,
    DagsterEventType.RUN_START,
)
_END = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)


@dataclass
class RunFacts:
    run_id: str
    status: str
    tags: dict[str, str]
    times: dict[str, float] = field(default_factory=dict)
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: stage -> partition -> materialization metadata (plain values)
    partitions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pid: int | None = None

    def span(self, first: str, last: str) -> float | None:
        if first in self.times and last in self.times:
            return self.times[last] - self.times[first]
        return None


def read_runs(instance: DagsterInstance, after: float) -> list[RunFacts]:
    """Every run created after ``after`` (epoch seconds), with its events' facts."""
    from datetime import datetime, timezone

    created_after = datetime.fromtimestamp(after, tz=timezone.utc)
    facts = []
    for record in instance.get_run_records(RunsFilter(created_after=created_after)):
        run = record.dagster_run
        fact = RunFacts(run.run_id, run.status.value, dict(run.tags))
        fact.times["created"] = record.create_timestamp.timestamp()
        starts: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind in _MARKS:
                fact.times[kind.name] = entry.timestamp
            elif kind in _END:
                fact.times["end"] = entry.timestamp
            elif kind == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                fact.steps[event.step_key] = (
                    starts.get(event.step_key, entry.timestamp),
                    entry.timestamp,
                )
            elif kind == DagsterEventType.ENGINE_EVENT and fact.pid is None:
                if (event.message or "").startswith("Started process for run"):
                    fact.pid = int(event.engine_event_data.metadata["pid"].value)
            elif kind == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.event_specific_data.materialization
                stage = materialization.asset_key.path[-1]
                values = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
                fact.partitions.setdefault(stage, {})[materialization.partition or ""] = values
        facts.append(fact)
    return sorted(facts, key=lambda f: f.times["created"])


def _stage_of(step_key: str) -> str:
    stage = step_key.rsplit("__", 1)[-1]
    return stage if stage in PARTITIONED + WHOLE else "checks"


def stage_figures(runs: list[RunFacts], probe: ProcessProbe | None) -> dict[str, dict[str, float]]:
    """Per stage: rows, stage seconds, step wall and CPU seconds, rows/s, CPU-s per 1,000 rows,
    peak run memory (MB), and partitions a run kept as an earlier run made them (their rows
    count in the CPU per row, whose CPU the probe saw in that run; rows/s is over the
    partitions whose stage seconds were recorded)."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    image_rows = {
        key: float(metadata.get("dagster/row_count", 0))
        for run in runs
        for key, metadata in run.partitions.get("images", {}).items()
    }
    for run in runs:
        for step_key, (start, end) in run.steps.items():
            stage = _stage_of(step_key)
            row = out[stage]
            row["step_wall_s"] += end - start
            if probe is not None and run.pid is not None:
                row["cpu_s"] += probe.cpu_between(run.pid, start, end)
                peak_mb = probe.peak_rss_between(run.pid, start, end) / 2**20
                row["peak_run_mb"] = max(row["peak_run_mb"], peak_mb)
            if stage in WHOLE or stage == "checks":
                row["stage_s"] += end - start
        for stage, partitions in run.partitions.items():
            row = out[stage]
            for key, metadata in partitions.items():
                if stage in PARTITIONED and metadata.get("kept"):
                    # Found already made by an earlier run (one a stop ended, say): its rows
                    # count, its stage seconds went with that run.
                    row["partitions_kept"] += 1
                    row["rows_in"] += image_rows.get(key, 0.0)
                elif stage in PARTITIONED:
                    rows = float(metadata.get("images_in", metadata.get("dagster/row_count", 0)))
                    row["stage_s"] += float(metadata.get("stage_s", 0.0))
                    row["rows_in"] += rows
                    row["rows_timed"] += rows
                else:
                    row["rows_in"] = float(
                        metadata.get("dagster/row_count") or metadata.get("vectors") or 0
                    )
                row["rows_out"] += float(
                    metadata.get("dagster/row_count") or metadata.get("vectors") or 0
                )
    for row in out.values():
        rows = row.get("rows_in", 0.0)
        timed = row.pop("rows_timed", rows)
        row["rows_per_s"] = timed / row["stage_s"] if row.get("stage_s") else 0.0
        row["cpu_s_per_1000_rows"] = 1000 * row["cpu_s"] / rows if rows else 0.0
    return {stage: {k: round(v, 3) for k, v in row.items()} for stage, row in out.items()}


def overhead(runs: list[RunFacts]) -> dict[str, Any]:
    """Dagster's share: queue wait, start-up and bookkeeping, per run kind."""
    groups: dict[str, list[RunFacts]] = defaultdict(list)
    for run in runs:
        groups["index build" if "clip_assets/index_build" in run.tags else "partition"].append(run)
    out: dict[str, Any] = {}
    for name, members in groups.items():
        queue = [r.span("RUN_ENQUEUED", "RUN_STARTING") for r in members]
        startup = [r.span("RUN_STARTING", "RUN_START") for r in members]
        walls, booked, partitions = [], [], 0
        for run in members:
            wall = run.span("RUN_START", "end")
            if wall is None:
                continue
            stage = sum(
                float(m.get("stage_s", 0.0)) for p in run.partitions.values() for m in p.values()
            )
            stage += sum(
                e - s for k, (s, e) in run.steps.items() if _stage_of(k) not in PARTITIONED
            )
            walls.append(wall)
            booked.append(wall - stage)
            partitions += len(run.partitions.get("metadata", {})) or len(
                run.partitions.get("images", {})
            )
        out[name] = {
            "runs": len(members),
            "queue_wait_s": _summary([q for q in queue if q is not None]),
            "start_up_s": _summary([s for s in startup if s is not None]),
            "run_wall_s": _summary(walls),
            "bookkeeping_s": _summary(booked),
            "bookkeeping_s_per_partition": round(sum(booked) / partitions, 3)
            if partitions
            else None,
        }
    return out


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "total": round(sum(values), 1),
    }


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def storage_per_row(root: Path, rows: int) -> dict[str, float]:
    """Bytes per source row each stage's folder holds."""
    folders = ("metadata", "images", "embeddings", "index", "id_mapping", "release")
    return {name: round(folder_bytes(root / name) / rows, 1) for name in folders}


def event_log_bytes(home: Path) -> dict[str, int]:
    """What the instance stores: run and event-log databases, compute logs, sensor ticks."""
    return {
        "history": folder_bytes(home / "history"),
        "schedules": folder_bytes(home / "schedules"),
        "compute_logs": folder_bytes(home / "storage"),
    }


def download_outcome(images_dir: Path) -> dict[str, Any]:
    """Rows per status and reason over every images partition (two columns read)."""
    table = pads.dataset(images_dir, format="parquet").to_table(columns=["status", "reason"])
    rows = table.num_rows
    statuses = {r["values"]: r["counts"] for r in pc.value_counts(table["status"]).to_pylist()}
    reasons = {
        r["values"]: r["counts"]
        for r in pc.value_counts(pc.fill_null(table["reason"], "ok")).to_pylist()
    }
    return {
        "rows": rows,
        "success_rate": round(statuses.get("ok", 0) / rows, 4) if rows else 0.0,
        "statuses": statuses,
        "reasons": dict(sorted(reasons.items(), key=lambda item: -item[1])),
    }
