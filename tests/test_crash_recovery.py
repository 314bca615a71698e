"""What a run killed with ``kill -9`` leaves behind is found and cleaned: its scratch folders
and half-written files go at the next start, and run monitoring learns its worker is dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
)
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import WorkerStatus

from clip_assets.graph.run_launcher import MonitoredRunLauncher
from resources.storage import LocalStorage

REPO = Path(__file__).resolve().parent.parent


def _killed_writer(root: Path) -> None:
    """A process that opens a scratch folder and a write in progress, then dies by SIGKILL."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from resources.storage import LocalStorage
        from resources.scratch import owner_tag
        storage = LocalStorage(root={str(root)!r})
        with storage.scratch("images-x") as work:
            (work / "x.parquet").write_bytes(b"half")
            folder = Path({str(root)!r}) / "ds" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f".x.parquet{{owner_tag()}}abcd.tmp").write_bytes(b"half")
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)


def test_orphans_of_a_killed_process_are_removed_and_live_work_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _killed_writer(root)
    storage = LocalStorage(root=str(root))
    assert len(list(storage.scratch_area().iterdir())) == 1
    assert len(list((root / "ds" / "images").glob(".*.tmp"))) == 1
    with storage.scratch("mine") as mine:
        removed = storage.remove_orphans()
        assert mine.is_dir()
    assert len(removed) == 2
    assert list(storage.scratch_area().iterdir()) == []
    assert list((root / "ds" / "images").iterdir()) == []


def test_run_monitoring_sees_a_killed_run_worker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        assert instance.run_monitoring_enabled
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        run = instance.add_run(DagsterRun(job_name="__ephemeral_asset_job__", run_id="r1"))
        instance.report_engine_event(
            f"Started process for run (pid: {worker.pid}).",
            run,
            EngineEventData.in_process(worker.pid),
        )
        start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name)
        instance.report_dagster_event(start, run_id=run.run_id)
        record = instance.get_run_by_id("r1")
        assert record is not None and record.status == DagsterRunStatus.STARTED
        launcher = instance.run_launcher
        assert launcher.check_run_worker_health(record).status == WorkerStatus.RUNNING
        worker.kill()
        worker.wait(timeout=10)
        time.sleep(0.1)
        health = launcher.check_run_worker_health(record)
        assert health.status == WorkerStatus.FAILED
        assert str(worker.pid) in (health.msg or "")
