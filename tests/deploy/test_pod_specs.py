"""Step pods built through dagster-k8s from the Helm values and the definitions' op tags."""

from __future__ import annotations

import copy

import pytest
import yaml
from deploy_files import NAMESPACE, RELEASE
from kubernetes.utils import parse_quantity

from clip_assets.deploy.helm_values import chart_deployment
from clip_assets.deploy.pod_specs import run_assets, run_job, step_jobs, to_yaml
from clip_assets.deploy.step_sizes import GPU_RESOURCE, step_sizes
from clip_assets.registry import DATACOMP_SMALL


def pods(defs, chart, run: str) -> dict[str, dict]:
    """Step key -> the Job dagster-k8s builds, as the Kubernetes API would receive it."""
    jobs = step_jobs(run_job(defs, run_assets(defs, run)), chart)
    documents = list(yaml.safe_load_all(to_yaml(jobs)))
    return {doc["metadata"]["labels"]["dagster/op"]: doc for doc in documents}


def container(job: dict) -> dict:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


@pytest.fixture(scope="module")
def partition_run(defs, chart) -> dict[str, dict]:
    return pods(defs, chart, "partition")


@pytest.fixture(scope="module")
def index_run(defs, chart) -> dict[str, dict]:
    return pods(defs, chart, "index")


def test_a_partition_run_is_one_pod_per_stage_in_order(partition_run) -> None:
    assert list(partition_run) == [
        "datacomp_small__metadata",
        "datacomp_small__images",
        "datacomp_small__embeddings",
    ]
    assert all(job["kind"] == "Job" for job in partition_run.values())


def test_only_the_embeddings_pod_gets_a_gpu_and_gpu_nodes(partition_run, index_run) -> None:
    everything = {**partition_run, **index_run}
    with_gpu = {
        step
        for step, job in everything.items()
        if GPU_RESOURCE in container(job)["resources"].get("limits", {})
    }
    assert with_gpu == {"datacomp_small__embeddings"}
    spec = partition_run["datacomp_small__embeddings"]["spec"]["template"]["spec"]
    assert (
        container(partition_run["datacomp_small__embeddings"])["resources"]["limits"][GPU_RESOURCE]
        == "1"
    )
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    for step, job in everything.items():
        if step != "datacomp_small__embeddings":
            assert "nodeSelector" not in job["spec"]["template"]["spec"], step


def test_every_step_pod_has_its_own_size(partition_run, index_run) -> None:
    sizes = step_sizes(DATACOMP_SMALL.rows_per_partition)
    for step, job in {**partition_run, **index_run}.items():
        stage = step.removeprefix("datacomp_small__")
        size = sizes[stage if stage in sizes else "checks"]
        resources = container(job)["resources"]
        assert resources["requests"]["cpu"] == str(size.cpu), step
        assert resources["requests"]["memory"] == f"{size.memory_gib}Gi", step
        assert resources["limits"]["memory"] == f"{size.memory_gib}Gi", step
        assert resources["requests"]["ephemeral-storage"] == f"{size.disk_gib}Gi", step
        for name, limit in resources["limits"].items():
            assert parse_quantity(resources["requests"][name]) <= parse_quantity(limit), step


def test_check_steps_are_sized_to_load_the_index(index_run) -> None:
    checks = [step for step in index_run if step.rsplit("__", 1)[1] not in step_sizes(1)]
    assert len(checks) == 3
    memory = {container(index_run[step])["resources"]["limits"]["memory"] for step in checks}
    assert memory == {f"{step_sizes(1)['checks'].memory_gib}Gi"}


def test_pods_run_the_image_with_the_secret_and_the_storage_root(
    partition_run, index_run, values
) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    for step, job in {**partition_run, **index_run}.items():
        spec = job["spec"]["template"]["spec"]
        main = container(job)
        assert main["image"] == image, step
        assert main["args"] == ["dagster", "api", "execute_step"]
        assert {"secretRef": {"name": "clip-assets-secrets"}} in main["envFrom"], step
        env = {e["name"]: e.get("value") for e in main["env"]}
        assert env["CLIP_ASSETS_ROOT"].startswith("gs://"), step
        assert env["CLIP_ASSETS_EXECUTOR"] == "k8s"
        assert env["DAGSTER_RUN_STEP_KEY"] == step
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
        assert spec["serviceAccountName"] == "clip-assets"
        assert spec["restartPolicy"] == "Never"
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert mounts == {"hf-cache": "/var/cache/huggingface"}


def test_pods_reach_the_charts_instance_and_postgres(partition_run) -> None:
    main = container(partition_run["datacomp_small__images"])
    password = next(e for e in main["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
    config_maps = [s["configMapRef"]["name"] for s in main["envFrom"] if "configMapRef" in s]
    assert config_maps == [
        "dagster-pipeline-env",
        "dagster-dagster-user-deployments-clip-assets-user-env",
    ]


def test_the_images_pod_starts_as_many_download_workers_as_it_has_cpus(partition_run) -> None:
    main = container(partition_run["datacomp_small__images"])
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["CLIP_ASSETS_DOWNLOAD_WORKERS"] == main["resources"]["requests"]["cpu"]


def test_a_value_the_render_does_not_model_is_refused(values) -> None:
    changed = copy.deepcopy(values)
    changed["dagster-user-deployments"]["deployments"][0]["nodeSelector"] = {"pool": "cpu"}
    with pytest.raises(ValueError, match="nodeSelector"):
        chart_deployment(changed, RELEASE, NAMESPACE)


def test_without_include_config_the_location_adds_nothing(values, defs) -> None:
    changed = copy.deepcopy(values)
    changed["dagster-user-deployments"]["deployments"][0]["includeConfigInLaunchedRuns"] = {
        "enabled": False
    }
    jobs = pods(defs, chart_deployment(changed, RELEASE, NAMESPACE), "partition")
    main = container(jobs["datacomp_small__metadata"])
    assert "CLIP_ASSETS_ROOT" not in {e["name"] for e in main["env"]}
