"""``clip-assets demo``, ``run`` and ``discover``: drive the asset graph from the shell.

All three go through ``clip_assets.graph.driver``, as the discovery sensor does. The dataset
is looked up in the registry before Dagster is imported, so a wrong name answers at once.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from clip_assets.cli.tables import print_table
from clip_assets.registry import find_dataset


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="output folder")
    parser.add_argument("--query", default="a picture of red circles", help="text to search")
    parser.add_argument("--images", type=int, default=60, help="good images in the sample")


def run_demo(args: argparse.Namespace) -> int:
    from clip_assets.demo import run_demo as demo

    return demo(args.workdir, args.query, args.images)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="a dataset of the registry")
    parser.add_argument(
        "--registry", type=Path, help="registry file (default: $CLIP_ASSETS_DATASETS)"
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument(
        "--partitions-per-run", type=int, default=16, help="partitions one run materialises"
    )


def run_run(args: argparse.Namespace) -> int:
    spec = find_dataset(args.dataset, args.registry)
    from clip_assets.cli.quiet import quiet_libraries

    quiet_libraries()
    from dagster import DagsterInstance

    from clip_assets.graph.driver import run_dataset
    from clip_assets.graph.environment import default_resources

    instance = (
        DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    )
    with instance:
        outcome = run_dataset(
            spec, default_resources(), instance, partitions_per_run=args.partitions_per_run
        )
    print()
    print_table(
        ["dataset", "partitions", "runs", "failed ranges", "index, mapping, release"],
        [
            [
                spec.name,
                len(outcome.partitions),
                outcome.partition_runs,
                len(outcome.failed_ranges),
                "built" if outcome.whole_dataset_error is None else "not built",
            ]
        ],
    )
    if outcome.whole_dataset_error is not None:
        print(f"\nclip-assets run: {outcome.whole_dataset_error}")
    return 0 if outcome.success else 1


def run_discover(args: argparse.Namespace) -> int:
    spec = find_dataset(args.dataset, args.registry)
    if not os.environ.get("DAGSTER_HOME"):
        raise RuntimeError(
            "discover adds partitions to a persistent instance: set DAGSTER_HOME (the folder "
            "`dagster dev` uses)"
        )
    from clip_assets.cli.quiet import quiet_libraries

    quiet_libraries()
    from dagster import DagsterInstance

    from clip_assets.graph.driver import discover
    from clip_assets.graph.environment import default_resources

    with DagsterInstance.get() as instance:
        plan = discover(spec, default_resources(), instance)
    print(f"{spec.name}: +{len(plan.add)} -{len(plan.delete)} partitions, {len(plan.run)} to run")
    for problem in plan.problems:
        print(f"  skipped {problem.file}: {problem}")
    return 0
