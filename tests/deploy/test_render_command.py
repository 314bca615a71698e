"""``clip-assets k8s render``: the step pods of one run, printed as Kubernetes YAML."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from deploy_files import VALUES

from clip_assets.cli import main


def render(capsys, *args: str) -> tuple[int, list[dict], str]:
    status = main(["k8s", "render", "--dataset", "datacomp_small", *args])
    out, err = capsys.readouterr()
    return status, [doc for doc in yaml.safe_load_all(out) if doc], err


def test_prints_a_job_per_step_of_a_partition_run(capsys) -> None:
    status, jobs, _ = render(capsys, "--values", str(VALUES))
    assert status == 0
    assert [job["metadata"]["labels"]["dagster/op"] for job in jobs] == [
        "datacomp_small__metadata",
        "datacomp_small__images",
        "datacomp_small__embeddings",
    ]


def test_the_index_run_has_its_steps_and_checks(capsys) -> None:
    status, jobs, _ = render(capsys, "--values", str(VALUES), "--run", "index")
    assert status == 0
    steps = [job["metadata"]["labels"]["dagster/op"] for job in jobs]
    assert steps[0] == "datacomp_small__faiss_index" and len(steps) == 6


def test_the_code_servers_env_shapes_the_pods(capsys, values, tmp_path: Path) -> None:
    """The GPU type is read where the definitions load: render loads them with the values'
    env, so a T4 cluster's values give a T4 node selector whatever this shell says."""
    t4 = copy.deepcopy(values)
    (deployment,) = t4["dagster-user-deployments"]["deployments"]
    for entry in deployment["env"]:
        if entry["name"] == "CLIP_ASSETS_GKE_ACCELERATOR":
            entry["value"] = "nvidia-tesla-t4"
    changed = tmp_path / "values.yaml"
    changed.write_text(yaml.safe_dump(t4))
    status, jobs, _ = render(capsys, "--values", str(changed))
    assert status == 0
    spec = jobs[-1]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def test_mistakes_exit_1_with_a_message(capsys, tmp_path: Path) -> None:
    status, _, err = render(capsys, "--values", str(VALUES), "--run", "everything")
    assert status == 1 and "run is one of partition, index" in err
    status, _, err = render(capsys, "--values", str(tmp_path / "missing.yaml"))
    assert status == 1 and "missing.yaml" in err
    assert main(["k8s", "render", "--dataset", "nope", "--values", str(VALUES)]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err
