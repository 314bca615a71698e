"""deploy/helm/values.yaml names only modules, classes, env vars, pools and secrets the code has.

Each env var the values file sets is probed by setting it and watching the code act on it, so
renaming one in the code (or in the file) fails here.
"""

from __future__ import annotations

import importlib
import re

import yaml
from dagster import AssetKey, Definitions, build_resources
from dagster._config import validate_config
from dagster.components.definitions import LazyDefinitions
from dagster_k8s import k8s_job_executor
from deploy_files import DOCKERFILE, DOCS, REPO, project

from clip_assets.definitions import location_definitions
from clip_assets.deploy.step_sizes import ACCELERATOR_LABEL
from clip_assets.graph.environment import default_resources
from clip_assets.registry import DATACOMP_SMALL
from resources.storage import GCSStorage


def user_deployment(values: dict) -> dict:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def probe_root(value: str) -> None:
    storage = default_resources()["storage"]
    assert isinstance(storage, GCSStorage)
    assert f"gs://{storage.bucket}/{storage.prefix}" == value


def probe_executor(value: str) -> None:
    assert value == "k8s"
    job = location_definitions(
        [DATACOMP_SMALL], default_resources()
    ).resolve_implicit_global_asset_job_def()
    assert job.executor_def is k8s_job_executor


def probe_accelerator(value: str) -> None:
    defs = location_definitions([DATACOMP_SMALL], default_resources())
    embeddings = defs.resolve_assets_def(AssetKey(["datacomp_small", "embeddings"]))
    tag = yaml.safe_load(embeddings.op.tags["dagster-k8s/config"])
    assert tag["pod_spec_config"]["node_selector"] == {ACCELERATOR_LABEL: value}


ENV_PROBES = {
    "CLIP_ASSETS_ROOT": probe_root,
    "CLIP_ASSETS_EXECUTOR": probe_executor,
    "CLIP_ASSETS_GKE_ACCELERATOR": probe_accelerator,
}


def test_the_code_location_module_serves_definitions(values) -> None:
    args = user_deployment(values)["dagsterApiGrpcArgs"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    target = getattr(importlib.import_module(options["--module-name"]), options["--attribute"])
    # ``@definitions`` makes the attribute lazy: Dagster calls it when it loads the location.
    loaded = target() if isinstance(target, LazyDefinitions) else target
    assert isinstance(loaded, Definitions)


def test_every_env_var_is_one_the_code_reads(values, monkeypatch) -> None:
    env = {e["name"]: e["value"] for e in user_deployment(values)["env"]}
    assert set(env) == set(ENV_PROBES)
    for name, value in env.items():
        with monkeypatch.context() as patched:
            patched.setenv(name, value)
            ENV_PROBES[name](value)


def test_the_secret_holds_the_token_the_hub_resource_reads(values, monkeypatch) -> None:
    secrets = [s["name"] for s in user_deployment(values)["envSecrets"]]
    assert secrets == ["clip-assets-secrets"]
    created = re.findall(
        r"kubectl create secret generic (\S+)[^\n]*--from-literal=(\w+)=", DOCS.read_text()
    )
    assert created == [("clip-assets-secrets", "HF_TOKEN")]
    monkeypatch.setenv("HF_TOKEN", "hf_token_from_the_secret")
    with build_resources({"hub": default_resources()["hub"]}) as resources:
        assert resources.hub.access().token == "hf_token_from_the_secret"


def test_the_hf_cache_volume_is_mounted_where_the_image_keeps_the_cache(values) -> None:
    deployment = user_deployment(values)
    volumes = {v["name"] for v in deployment["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert set(mounts) <= volumes
    (hf_home,) = re.findall(r"HF_HOME=(\S+)", DOCKERFILE.read_text())
    assert mounts == {"hf-cache": hf_home}


def test_compute_logs_go_to_gcs_through_dagster_gcp(values) -> None:
    logs = values["computeLogManager"]
    assert logs["type"] == "GCSComputeLogManager"
    # The chart's template writes this module and class into the instance's dagster.yaml.
    module = importlib.import_module("dagster_gcp.gcs.compute_log_manager")
    manager = getattr(module, logs["type"])
    config = logs["config"]["gcsComputeLogManager"]
    assert validate_config(manager.config_type(), config).success
    root = next(
        e["value"] for e in user_deployment(values)["env"] if e["name"] == "CLIP_ASSETS_ROOT"
    )
    assert root.removeprefix("gs://").split("/")[0] == config["bucket"]


def test_runs_launch_through_dagster_k8s_with_a_queue(values) -> None:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert hasattr(importlib.import_module("dagster_k8s"), "K8sRunLauncher")
    assert values["concurrency"]["enabled"] is True
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] >= 1
    assert values["postgresql"]["enabled"] is True


def test_the_pool_limit_is_the_gpu_pools_and_works_like_the_local_one(values, defs) -> None:
    pools = {
        assets_def.op.pool for assets_def in defs.assets if getattr(assets_def, "op", None)
    } - {None}
    # The chart sets only a default limit: it is the gpu pool's because gpu is the only pool.
    assert pools == {"gpu"}
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())["concurrency"]["pools"]
    chart = values["concurrency"]["pools"]
    assert chart["granularity"] == local["granularity"]
    assert chart["defaultLimit"] >= 1


def test_the_image_has_what_the_charts_instance_loads_in_our_pods() -> None:
    metadata = project()
    (extra,) = re.findall(r"CLIP_ASSETS_EXTRAS=(\w+)", DOCKERFILE.read_text())
    installed = " ".join(metadata["dependencies"] + metadata["optional-dependencies"][extra])
    # K8sRunLauncher and the executor, the GCS compute log manager, the Postgres storage.
    for package in ("dagster-k8s", "dagster-gcp", "dagster-postgres"):
        assert f"{package}==" in installed, package


def test_the_cluster_limits_runs_as_the_local_instance_does(values) -> None:
    """The chart's run queue and run monitoring say what dagster.yaml says."""
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    tag_limits = values["concurrency"]["runs"]["tagConcurrencyLimits"]
    assert tag_limits == local["concurrency"]["runs"]["tag_concurrency_limits"]
    daemon = values["dagsterDaemon"]
    assert daemon["runMonitoring"]["enabled"] and local["run_monitoring"]["enabled"]
    assert daemon["runRetries"]["maxRetries"] == local["run_retries"]["max_retries"]
    assert daemon["runRetries"]["retryOnAssetOrOpFailure"] is False
