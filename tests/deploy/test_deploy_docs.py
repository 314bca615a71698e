"""docs/deploy.md names what the code, the chart and the rendered pods really have."""

from __future__ import annotations

import re
import textwrap

import yaml
from dagster._config import process_config
from dagster_k8s import k8s_job_executor
from deploy_files import DOCS, REPO

from clip_assets.deploy.pod_specs import run_assets, run_job, step_jobs, to_yaml
from clip_assets.deploy.step_sizes import ACCELERATOR_ENV, ACCELERATOR_LABEL

TEXT = DOCS.read_text()


def test_the_chart_version_is_the_pinned_dagster() -> None:
    (pinned,) = re.findall(r"^dagster==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert set(re.findall(r"dagster/dagster --version (\S+)", TEXT)) == {pinned}


def test_the_sensors_it_turns_on_exist(defs) -> None:
    sensors = {sensor.name for sensor in defs.sensors}
    named = set(re.findall(r"`(\w+_discover_shards|\w+_rebuild_index)`", TEXT))
    assert named == {"datacomp_small_discover_shards", "datacomp_small_rebuild_index"}
    assert named <= sensors


def test_the_labels_it_selects_pods_by_are_on_the_pods(defs, chart) -> None:
    jobs = step_jobs(run_job(defs, run_assets(defs, "partition")), chart)
    labels = [
        doc["spec"]["template"]["metadata"]["labels"] for doc in yaml.safe_load_all(to_yaml(jobs))
    ]
    for key, value in re.findall(r"-l ([\w./-]+)=([\w.-]+)", TEXT):
        assert any(pod.get(key) == value for pod in labels), (key, value)
    assert f"`{ACCELERATOR_LABEL}`" in TEXT and f"`{ACCELERATOR_ENV}`" in TEXT


def test_the_per_step_override_is_valid_executor_config() -> None:
    (block,) = re.findall(r"```yaml\n( *execution:.*?)```", TEXT, re.S)
    config = yaml.safe_load(textwrap.dedent(block))["execution"]["config"]
    assert process_config(k8s_job_executor.config_schema.config_type, config).success
    (step,) = config["per_step_k8s_config"]
    assert step.endswith("__faiss_index")
