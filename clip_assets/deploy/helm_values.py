"""What Dagster's Helm chart hands the pods it launches for our code location.

With ``includeConfigInLaunchedRuns`` (the chart's default), the chart turns a user deployment
into a container context (its env, secrets, volumes, resources, namespace, service account)
that the run launcher and ``k8s_job_executor`` apply to every run and step pod of that code
location; its ``runLauncher`` values become the instance's ``K8sRunLauncher`` settings, the
base every launched pod starts from. This module reads those parts of a values file into
dagster-k8s's own ``K8sContainerContext`` objects, following the chart's templates
(``dagsterUserDeployments.k8sContainerContext``, ``dagsterYaml.runLauncher.k8s``) and its
naming (``dagster.fullname``), so that :mod:`clip_assets.deploy.pod_specs` can build step pods
as the executor would, without a cluster.

Reads: a values file. Writes: nothing. Guarantees: a value that would reach launched pods and
is not modelled here is refused with its name, rather than left out of the rendered pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dagster_k8s import DagsterK8sJobConfig
from dagster_k8s.container_context import K8sContainerContext

CHART = "dagster"
USER_CHART = "dagster-user-deployments"
DEFAULT_DAGSTER_HOME = "/opt/dagster/dagster_home"
#: User-deployment fields that shape only the code server's own pod, never launched pods.
SERVER_ONLY = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "port",
    "includeConfigInLaunchedRuns",
    "replicaCount",
    "annotations",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "service",
    "deploymentStrategy",
}
#: User-deployment fields carried into launched pods and modelled below.
CARRIED = {
    "env",
    "envConfigMaps",
    "envSecrets",
    "volumes",
    "volumeMounts",
    "resources",
    "labels",
    "schedulerName",
}
#: Run-launcher fields that only say how the launcher reaches the cluster.
LAUNCHER_ONLY = {"loadInclusterConfig", "kubeconfigFile", "failPodOnRunFailure"}
LAUNCHER_CARRIED = {
    "imagePullPolicy",
    "jobNamespace",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
}


@dataclass(frozen=True)
class ChartDeployment:
    """One code location as the chart deploys it: what its launched pods are built from."""

    location: str
    image: str
    dagster_home: str
    instance_config_map: str
    postgres_password_secret: str
    #: From ``runLauncher``: the base of every launched pod.
    launcher_context: K8sContainerContext
    #: From the user deployment (``includeConfigInLaunchedRuns``), merged over the base.
    location_context: K8sContainerContext
    #: The code server's literal environment variables (``env`` entries with a ``value``).
    env: dict[str, str]

    def job_config(self) -> DagsterK8sJobConfig:
        """What ``K8sContainerContext.get_k8s_job_config`` takes from the run launcher, with the
        code location's image (the executor's fallback when neither names one)."""
        return DagsterK8sJobConfig(
            job_image=self.image,
            dagster_home=self.dagster_home,
            instance_config_map=self.instance_config_map,
            postgres_password_secret=self.postgres_password_secret,
        )


def load_values(path: Path) -> dict[str, Any]:
    """The values file as a mapping; a clear error when it is not one."""
    values = yaml.safe_load(Path(path).read_text())
    if not isinstance(values, dict):
        raise ValueError(f"{path} is not a Helm values mapping")
    return values


def fullname(release: str, chart: str, values: Mapping[str, Any]) -> str:
    """The chart's ``dagster.fullname``: the release name when it contains the chart's name."""
    override = (values.get("global") or {}).get("fullnameOverride")
    if override:
        return override[:63].rstrip("-")
    name = release if chart in release else f"{release}-{chart}"
    return name[:63].rstrip("-")


def _names(refs: list[Mapping[str, str]] | None) -> list[str]:
    """Names of ``[{name: ...}]`` env sources, skipping the chart's empty placeholders."""
    return [ref["name"] for ref in refs or [] if ref.get("name")]


def _refuse_unmodelled(where: str, given: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(key for key, value in given.items() if key not in known and value)
    if unknown:
        raise ValueError(
            f"{where} sets {', '.join(unknown)}, which reach launched pods but are not "
            "modelled by clip_assets.deploy.helm_values; render cannot show them"
        )


def _user_deployment(values: Mapping[str, Any], location: str | None) -> dict[str, Any]:
    section = values.get(USER_CHART) or {}
    deployments = section.get("deployments") or []
    if isinstance(deployments, dict):
        deployments = [{**body, "name": name} for name, body in deployments.items()]
    chosen = [d for d in deployments if location is None or d.get("name") == location]
    if len(chosen) != 1:
        names = [d.get("name") for d in deployments]
        raise ValueError(f"choose one user deployment of {names} (asked for {location!r})")
    return chosen[0]


def chart_deployment(
    values: Mapping[str, Any], release: str, namespace: str, location: str | None = None
) -> ChartDeployment:
    """The code location ``location`` (the only one when None) of a release of the chart."""
    deployment = _user_deployment(values, location)
    _refuse_unmodelled(f"user deployment {deployment['name']!r}", deployment, SERVER_ONLY | CARRIED)
    global_values = values.get("global") or {}
    main = fullname(release, CHART, values)
    user = fullname(release, USER_CHART, values)
    user_section = values.get(USER_CHART) or {}
    image = deployment["image"]
    tag = image.get("tag")
    if not tag:
        raise ValueError(f"give user deployment {deployment['name']!r} an image tag")
    launcher = (((values.get("runLauncher") or {}).get("config")) or {}).get("k8sRunLauncher") or {}
    _refuse_unmodelled(
        "runLauncher.config.k8sRunLauncher", launcher, LAUNCHER_ONLY | LAUNCHER_CARRIED
    )
    env = deployment.get("env") or []
    location_context: dict[str, Any] = {
        "image_pull_policy": image.get("pullPolicy"),
        "image_pull_secrets": user_section.get("imagePullSecrets") or [],
        # The chart always adds the deployment's own ConfigMap, which holds a dict-form env.
        "env_config_maps": [
            f"{user}-{deployment['name']}-user-env",
            *_names(deployment.get("envConfigMaps")),
        ],
        "env_secrets": _names(deployment.get("envSecrets")),
        "volume_mounts": deployment.get("volumeMounts") or [],
        "volumes": deployment.get("volumes") or [],
        "labels": deployment.get("labels") or {},
        "resources": deployment.get("resources") or {},
        "scheduler_name": deployment.get("schedulerName"),
        "namespace": namespace,
        "service_account_name": global_values.get("serviceAccountName")
        or (user_section.get("serviceAccount") or {}).get("name")
        or f"{user}-user-deployments",
        "env": env if isinstance(env, list) else [],
    }
    included = (deployment.get("includeConfigInLaunchedRuns") or {}).get("enabled", True)
    return ChartDeployment(
        location=deployment["name"],
        image=f"{image['repository']}:{tag}",
        dagster_home=global_values.get("dagsterHome") or DEFAULT_DAGSTER_HOME,
        instance_config_map=f"{main}-instance",
        postgres_password_secret=global_values.get("postgresqlSecretName")
        or f"{main}-postgresql-secret",
        launcher_context=K8sContainerContext(
            image_pull_policy=launcher.get("imagePullPolicy"),
            image_pull_secrets=values.get("imagePullSecrets") or [],
            service_account_name=global_values.get("serviceAccountName")
            or (values.get("serviceAccount") or {}).get("name")
            or main,
            env_config_maps=[f"{main}-pipeline-env", *_names(launcher.get("envConfigMaps"))],
            env_secrets=_names(launcher.get("envSecrets")),
            env_vars=launcher.get("envVars") or [],
            volume_mounts=launcher.get("volumeMounts") or [],
            volumes=launcher.get("volumes") or [],
            namespace=launcher.get("jobNamespace") or namespace,
        ),
        location_context=(
            K8sContainerContext.create_from_config({"k8s": location_context})
            if included
            else K8sContainerContext()
        ),
        env={e["name"]: str(e["value"]) for e in location_context["env"] if "value" in e},
    )
