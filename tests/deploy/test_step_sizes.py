"""Pod sizes per step: dagster-k8s reads each tag, only embeddings asks for a GPU."""

from __future__ import annotations

import json

import pytest
from autofaiss.utils.cast import cast_memory_to_bytes
from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, get_user_defined_k8s_config
from kubernetes.utils import parse_quantity

from clip_assets.deploy.step_sizes import (
    DOWNLOAD_WORKERS_ENV,
    GPU_RESOURCE,
    IMAGES_WORKERS,
    accelerator_from_env,
    k8s_op_tags,
    step_sizes,
)
from clip_assets.graph.dataset_graph import PARTITIONED_STAGES, WHOLE_DATASET_STAGES
from clip_assets.index.index_settings import IndexSettings

ROWS = 50_000


def container(step: str, accelerator: str = "nvidia-l4"):
    """The step's tag as dagster-k8s reads it when it launches the step's pod."""
    return get_user_defined_k8s_config(k8s_op_tags(step, ROWS, accelerator))


@pytest.mark.parametrize("step", list(step_sizes(ROWS)))
def test_each_tag_is_valid_dagster_k8s_config(step: str) -> None:
    config = container(step)
    resources = config.container_config["resources"]
    for name, limit in resources["limits"].items():
        assert parse_quantity(resources["requests"][name]) <= parse_quantity(limit), name
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    env = {e["name"]: e["value"] for e in config.container_config["env"]}
    assert env["OMP_NUM_THREADS"] == resources["requests"]["cpu"]


def test_only_embeddings_asks_for_a_gpu() -> None:
    with_gpu = {
        step
        for step in step_sizes(ROWS)
        if GPU_RESOURCE in container(step).container_config["resources"]["limits"]
    }
    assert with_gpu == {"embeddings"}
    gpu = container("embeddings", accelerator="nvidia-tesla-t4")
    assert gpu.container_config["resources"]["limits"][GPU_RESOURCE] == "1"
    assert gpu.pod_spec_config["node_selector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"
    }
    assert gpu.pod_spec_config["tolerations"] == [
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert not container("images").pod_spec_config


def test_images_pins_its_workers_to_its_cpus() -> None:
    config = container("images")
    env = {e["name"]: e["value"] for e in config.container_config["env"]}
    assert env[DOWNLOAD_WORKERS_ENV] == str(IMAGES_WORKERS)
    assert config.container_config["resources"]["requests"]["cpu"] == str(IMAGES_WORKERS)


def test_sizes_that_hold_a_partition_grow_with_it() -> None:
    small, large = step_sizes(10_000), step_sizes(200_000)
    assert large["embeddings"].memory_gib > small["embeddings"].memory_gib
    assert large["images"].disk_gib > small["images"].disk_gib
    # Streamed row group by row group: the download's memory does not grow with the partition.
    assert large["images"].memory_gib == small["images"].memory_gib


def test_index_build_gets_the_memory_autofaiss_is_allowed() -> None:
    budget = cast_memory_to_bytes(IndexSettings().current_memory_available)
    limit = container("faiss_index").container_config["resources"]["limits"]["memory"]
    assert parse_quantity(limit) > budget
    index = cast_memory_to_bytes(IndexSettings().max_index_memory_usage)
    checks = container("checks").container_config["resources"]["limits"]["memory"]
    assert parse_quantity(checks) > index


def test_every_stage_of_the_graph_and_its_checks_have_a_size() -> None:
    stages = {*PARTITIONED_STAGES, *WHOLE_DATASET_STAGES, "checks"}
    assert set(step_sizes(ROWS)) == stages


def test_unknown_step_is_refused() -> None:
    with pytest.raises(KeyError, match="no pod size for step 'imgs'"):
        k8s_op_tags("imgs", ROWS)


def test_tag_is_the_key_dagster_k8s_reads() -> None:
    tags = k8s_op_tags("metadata", ROWS)
    assert list(tags) == [USER_DEFINED_K8S_CONFIG_KEY]
    assert json.loads(tags[USER_DEFINED_K8S_CONFIG_KEY])["container_config"]


def test_accelerator_from_env() -> None:
    assert accelerator_from_env({}) == "nvidia-l4"
    assert accelerator_from_env({"CLIP_ASSETS_GKE_ACCELERATOR": "nvidia-a100-80gb"}) == (
        "nvidia-a100-80gb"
    )
