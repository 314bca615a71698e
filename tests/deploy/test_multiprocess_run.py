"""A partition run with every step in its own process, as pods would run it, writes what an
in-process run writes.

The job is rebuilt in each step process from this module (``build_reconstructable_job``), with the
dataset and resources from the environment, exactly as a step pod rebuilds it from the code
location: the executor comes from ``CLIP_ASSETS_EXECUTOR``, storage from ``CLIP_ASSETS_ROOT``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import (
    DagsterEventType,
    Definitions,
    JobDefinition,
    build_reconstructable_job,
    define_asset_job,
    execute_job,
    instance_for_test,
)

from clip_assets.definitions import location_definitions
from clip_assets.deploy.pod_specs import run_assets
from clip_assets.graph.driver import plan_partitions
from clip_assets.graph.environment import default_resources
from clip_assets.graph.partitions import range_request
from clip_assets.offline.datacomp import write_datacomp_shard
from clip_assets.registry import DatasetSpec
from clip_assets.source.files import HubAccess
from resources.storage import LocalStorage

HERE = Path(__file__).parent
SOURCE_ENV = "CLIP_ASSETS_TEST_SOURCE"
ROWS_ENV = "CLIP_ASSETS_TEST_ROWS_PER_PARTITION"
STAGES = ("metadata", "images", "embeddings")
PRELOAD = {"preload_modules": ["clip_assets.definitions"]}


def sample_spec() -> DatasetSpec:
    return DatasetSpec(
        name="sample",
        source=os.environ[SOURCE_ENV],
        rows_per_partition=int(os.environ[ROWS_ENV]),
        allowed_hosts=("127.0.0.1",),
    )


def partition_run() -> JobDefinition:
    """The partitioned assets' job of the sample dataset, as every step process rebuilds it."""
    defs = location_definitions([sample_spec()], default_resources())
    job = define_asset_job("partition_run", selection=run_assets(defs, "partition"))
    return Definitions.merge(defs, Definitions(jobs=[job])).resolve_job_def(job.name)


def step_pids(result) -> dict[str, int]:
    """Step key -> the pid of the process that ran it."""
    return {
        event.step_key: event.pid
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_START
    }


def add_partitions(root: Path, instance) -> list[str]:
    """Adds the source's partitions to ``instance`` (the manifest is written under ``root``)."""
    spec = sample_spec()
    keys = plan_partitions(spec, LocalStorage(root=str(root)), [], HubAccess()).add
    instance.add_dynamic_partitions(f"{spec.name}_shards", keys)
    return keys


@pytest.mark.timeout(600)
def test_steps_in_their_own_processes_write_what_one_process_writes(
    tmp_path: Path, site, image_server, tiny_model_name, monkeypatch
) -> None:
    rows = site.rows(image_server)
    write_datacomp_shard(tmp_path / "source", rows)
    for name, value in {
        SOURCE_ENV: str(tmp_path / "source"),
        ROWS_ENV: str((len(rows) + 1) // 2),
        "CLIP_ASSETS_MODEL": tiny_model_name,
        "CLIP_ASSETS_PRETRAINED": "none",
        "CLIP_ASSETS_DEVICE": "cpu",
        # Downloads in the step's own process: the shards are too small to repay workers.
        "CLIP_ASSETS_DOWNLOAD_WORKERS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)

    monkeypatch.setenv("CLIP_ASSETS_EXECUTOR", "multiprocess")
    monkeypatch.setenv("CLIP_ASSETS_ROOT", str(tmp_path / "multiprocess"))
    with instance_for_test() as instance:
        keys = add_partitions(tmp_path / "multiprocess", instance)
        result = execute_job(
            # Step processes import this module by name, as a pod imports the code location.
            build_reconstructable_job(
                __name__, partition_run.__name__, reconstructor_working_directory=str(HERE)
            ),
            instance=instance,
            tags=range_request(keys[0], keys[-1])[1],
            # Step processes fork from one that imported the code once (torch, faiss, ...).
            run_config={"execution": {"config": {"start_method": {"forkserver": PRELOAD}}}},
        )
        assert result.success
        processes = step_pids(result)
    assert len(keys) == 2
    assert list(processes) == [f"sample__{stage}" for stage in STAGES]
    assert len(set(processes.values())) == 3 and os.getpid() not in processes.values()

    monkeypatch.setenv("CLIP_ASSETS_ROOT", str(tmp_path / "in_process"))
    with instance_for_test() as instance:
        keys = add_partitions(tmp_path / "in_process", instance)
        result = partition_run().execute_in_process(
            instance=instance, tags=range_request(keys[0], keys[-1])[1]
        )
        assert result.success
        assert set(step_pids(result).values()) == {os.getpid()}

    for stage in STAGES:
        for key in keys:
            apart, together = (
                pq.read_table(tmp_path / run / "sample" / stage / f"{key}.parquet")
                for run in ("multiprocess", "in_process")
            )
            assert apart.num_rows == together.num_rows > 0, (stage, key)
            if stage == "embeddings":
                assert apart.select(["uid", "url"]).equals(together.select(["uid", "url"]))
                np.testing.assert_allclose(
                    np.stack(apart["embedding"].to_numpy(zero_copy_only=False)),
                    np.stack(together["embedding"].to_numpy(zero_copy_only=False)),
                    atol=1e-6,
                )
            else:
                assert apart.equals(together), (stage, key)
