"""``clip-assets k8s render``: the pods a Kubernetes deployment would launch, before deploying.

Reads the Helm values file and the dataset's graph, and prints, as Kubernetes YAML, the Job
``k8s_job_executor`` would create for each step of one partition run (or of the index run),
built by dagster-k8s (``clip_assets.deploy.pod_specs``). Dagster is imported only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clip_assets.registry import find_dataset

DEFAULT_VALUES = Path("deploy") / "helm" / "values.yaml"


def add_k8s_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    render = actions.add_parser(
        "render",
        help="print the step pods of one run as Kubernetes YAML",
        description="Prints the Jobs k8s_job_executor would create for each step of one run "
        "of the dataset, from the Helm values and the code's per-step sizes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    render.add_argument("--dataset", required=True, help="a dataset of the registry")
    render.add_argument(
        "--registry", type=Path, help="registry file (default: $CLIP_ASSETS_DATASETS)"
    )
    render.add_argument("--values", type=Path, default=DEFAULT_VALUES, help="Helm values file")
    render.add_argument(
        "--run", default="partition", help="partition (metadata, images, embeddings) or index"
    )
    render.add_argument("--release", default="dagster", help="Helm release name")
    render.add_argument("--namespace", default="dagster", help="Kubernetes namespace")
    render.add_argument("--location", help="user deployment name (default: the only one)")


def run_k8s(args: argparse.Namespace) -> int:
    spec = find_dataset(args.dataset, args.registry)
    from clip_assets.cli.quiet import quiet_libraries

    quiet_libraries()
    from clip_assets.definitions import location_definitions
    from clip_assets.deploy.helm_values import chart_deployment, load_values
    from clip_assets.deploy.pod_specs import render_run
    from clip_assets.graph.environment import default_resources

    chart = chart_deployment(load_values(args.values), args.release, args.namespace, args.location)
    print(render_run(lambda: location_definitions([spec], default_resources()), chart, args.run))
    return 0
