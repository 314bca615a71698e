"""A run killed with ``kill -9`` under the real daemon: run monitoring marks it failed, run
retries start it again, and the retry repeats no finished partition and cleans up after it.

The Dagster daemon (what ``dagster dev`` runs beside the webserver: sensors, the run queue,
run monitoring, run retries) with the project's dagster.yaml (monitoring polled every few
seconds), the discovery sensor launching the run, a loopback image server whose last
partition holds a slow image, and the run worker killed while that partition downloads.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from stand_ins.dagster_dev import REPO, dagster_daemon, wait_for

from clip_assets.offline import images
from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard
from clip_assets.offline.image_server import ImageServer, image, slow

ROWS_PER_PARTITION = 4


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event and (event.message or "").startswith("Started process for run"):
            return int(event.engine_event_data.metadata["pid"].value)
    return None


@pytest.mark.timeout(900)
def test_killed_run_is_failed_retried_and_resumed(tmp_path: Path, tiny_model_name: str) -> None:
    routes = {f"/img/{i}.jpg": image(images.jpeg(320, 240, seed=i)) for i in range(7)}
    # Last row of the second partition: slow enough to kill the run while it downloads.
    routes["/img/slow.jpg"] = slow(image(images.jpeg(320, 240, seed=99)), 6.0)
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = (REPO / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(
        config.replace("poll_interval_seconds: 30", "poll_interval_seconds: 2")
    )
    with ImageServer(routes) as server:
        rows = [SampleRow(url=server.url(path), text=f"row {path}") for path in sorted(routes)]
        rows.sort(key=lambda row: row.url.endswith("slow.jpg"))
        write_datacomp_shard(tmp_path / "source", rows)
        registry = tmp_path / "datasets.yaml"
        registry.write_text(
            f"datasets:\n  - name: killed\n    source: {tmp_path / 'source'}\n"
            f"    rows_per_partition: {ROWS_PER_PARTITION}\n    allowed_hosts: [127.0.0.1]\n"
        )
        env = {
            **os.environ,
            "CLIP_ASSETS_DATASETS": str(registry),
            "CLIP_ASSETS_ROOT": str(tmp_path / "data"),
            "CLIP_ASSETS_MODEL": tiny_model_name,
            "CLIP_ASSETS_PRETRAINED": "none",
            "DAGSTER_HOME": str(home),
        }
        # The instance first: its storage exists before the daemon opens it (two processes
        # creating the SQLite schema at once can leave it with two migration heads).
        with DagsterInstance.from_config(str(home)) as instance, dagster_daemon(env):
            images_dir = tmp_path / "data" / "killed" / "images"

            def first_run():
                runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
                done = list(images_dir.glob("*-0000.parquet")) if images_dir.exists() else []
                return runs[0] if runs and done else None

            run = wait_for(first_run, 420, "the sensor's run to finish its first partition")
            pid = wait_for(lambda: _worker_pid(instance, run.run_id), 30, "the worker pid")
            hits_first = {p: server.hits[p] for p in routes if server.hits[p]}
            os.kill(pid, signal.SIGKILL)

            failed = wait_for(
                lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE,
                120,
                "run monitoring to mark the killed run failed",
            )
            assert failed
            retry = wait_for(
                lambda: next(
                    iter(instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": run.run_id}))),
                    None,
                ),
                120,
                "run retries to start the run again",
            )
            finished = wait_for(
                lambda: (
                    instance.get_run_by_id(retry.run_id).status
                    in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
                ),
                240,
                "the retry to finish",
            )
            assert finished
            assert instance.get_run_by_id(retry.run_id).status == DagsterRunStatus.SUCCESS
        first_partition = [row.url.rsplit("/", 1)[1] for row in rows[:ROWS_PER_PARTITION]]
        for name in first_partition:
            assert server.hits[f"/img/{name}"] == hits_first[f"/img/{name}"] == 1, name
        assert server.hits["/img/slow.jpg"] >= 1
    assert len(list(images_dir.glob("*.parquet"))) == 2
    assert list((tmp_path / "data" / ".scratch").iterdir()) == []
