"""CLI subcommands that drive the asset graph: ``demo``, ``run`` and ``discover``.

Each ``add_*`` registers one subcommand on the ``clip-assets`` parser (see clip_assets.cli);
heavy imports happen inside the ``run`` functions so ``clip-assets --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def add_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole graph offline on a sample served from 127.0.0.1, then search",
        description="Serves a sample of real images on 127.0.0.1, materialises every asset "
        "of the 'demo' dataset through Dagster with stand-in ViT-B-32 weights, then searches.",
    )
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="output folder")
    parser.add_argument("--query", default="a picture of red circles", help="text to search")
    parser.add_argument("--images", type=int, default=60, help="good images in the sample")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from clip_assets.demo import launch

    return launch(args.workdir, args.query, args.images)


def _add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="a dataset of the registry")
    parser.add_argument(
        "--registry", type=Path, help="registry file (default: $CLIP_ASSETS_DATASETS)"
    )


def add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="materialise a dataset through Dagster without the UI",
        description="Adds the dataset's partitions, backfills metadata -> images -> "
        "embeddings, then builds faiss_index, id_mapping and hf_release, recording the runs "
        "in $DAGSTER_HOME's instance (an ephemeral one when unset).",
    )
    _add_dataset_flags(parser)
    parser.add_argument("--partitions-per-run", type=int, default=16)
    parser.set_defaults(run=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from clip_assets.definitions import default_resources
    from clip_assets.registry import find_dataset
    from clip_assets.runner import run_dataset

    spec = find_dataset(args.dataset, args.registry)
    instance = (
        DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    )
    with instance:
        outcome = run_dataset(
            spec, default_resources(), instance, partitions_per_run=args.partitions_per_run
        )
    return 1 if outcome.failed_ranges else 0


def add_discover(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="add partitions for a dataset's source slices (what the sensor does)",
    )
    _add_dataset_flags(parser)
    parser.set_defaults(run=_run_discover)


def _run_discover(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from clip_assets.assets.dataset import DatasetGraph
    from clip_assets.assets.discovery import plan_partitions
    from clip_assets.definitions import default_resources
    from clip_assets.registry import find_dataset

    spec = find_dataset(args.dataset, args.registry)
    resources = default_resources()
    partitions = DatasetGraph(spec).partitions.name
    with DagsterInstance.get() as instance:
        existing = list(instance.get_dynamic_partitions(partitions))
        plan = plan_partitions(spec, resources["storage"], existing, resources["hub"].access())
        for key in plan.delete:
            instance.delete_dynamic_partition(partitions, key)
        instance.add_dynamic_partitions(partitions, plan.add)
    print(f"{spec.name}: +{len(plan.add)} -{len(plan.delete)} partitions, {len(plan.run)} to run")
    return 0
