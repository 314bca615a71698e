"""Two launches of the same work do not run at once: the instance limits runs by the tags the
code sets, and the in-process driver waits for a run holding the same tag."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun

from clip_assets.graph.automation import INDEX_BUILD_TAG, build_rebuild_sensor
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.driver import wait_for_conflicting_runs
from clip_assets.graph.partitions import PARTITION_TAG, RANGE_START_TAG
from clip_assets.registry import DatasetSpec

REPO = Path(__file__).resolve().parent.parent


def test_the_instance_limits_one_run_per_partition_range_and_index_build() -> None:
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    per_value = {
        limit["key"]: limit["limit"]
        for limit in limits
        if limit.get("value") == {"applyLimitPerUniqueValue": True}
    }
    assert per_value == {PARTITION_TAG: 1, RANGE_START_TAG: 1, INDEX_BUILD_TAG: 1}


def test_index_builds_are_tagged_with_their_dataset() -> None:
    graph = DatasetGraph(DatasetSpec(name="tagged", source="/nowhere"))
    assert build_rebuild_sensor(graph).run_tags == {INDEX_BUILD_TAG: "tagged"}


def test_the_driver_waits_for_a_run_holding_the_same_partition(tmp_path: Path) -> None:
    with DagsterInstance.local_temp(str(tmp_path)) as instance:
        holder = instance.add_run(
            DagsterRun(job_name="__ephemeral_asset_job__", tags={PARTITION_TAG: "p-0001"})
        )
        start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=holder.job_name)
        instance.report_dagster_event(start, run_id=holder.run_id)
        waited: list[str] = []
        done = threading.Event()

        def wait() -> None:
            wait_for_conflicting_runs(instance, {PARTITION_TAG: "p-0001"}, waited.append)
            done.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(1.0)
        assert not done.is_set() and waited and holder.run_id in waited[0]
        wait_for_conflicting_runs(instance, {PARTITION_TAG: "p-0002"}, waited.append)
        instance.report_run_failed(instance.get_run_by_id(holder.run_id))
        assert done.wait(timeout=10)
