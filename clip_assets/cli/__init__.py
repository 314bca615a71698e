"""``clip-assets``: the command line, one dispatch table.

``COMMANDS`` maps each subcommand to its help line, the function that declares its arguments
and the function that runs it; ``main`` parses, dispatches and turns expected errors into one
readable line and exit status 1. Command modules import their heavy dependencies (torch,
faiss, Dagster) only when they run, so ``--help`` and bad arguments answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clip_assets.cli import k8s_commands, pipeline_commands, retrieve_commands, search_commands


@dataclass(frozen=True)
class Command:
    """One subcommand: what ``--help`` says, its arguments, and what it does."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "search": Command(
        "print the nearest images to a text, image or embedding",
        "Search a CLIP index. Queries: one or more texts, --image, --image-url or --embedding. "
        "The index: --dataset in --root (default), --index-dir or --hf-repo.",
        search_commands.add_search_arguments,
        search_commands.run_search,
    ),
    "serve": Command(
        "serve indices over clip-retrieval's back-end API, with a search page",
        "Serve one or more indices: POST /knn-service, POST /metadata, GET /indices-list "
        "(clip-retrieval's clip back API) and a search page at /.",
        search_commands.add_serve_arguments,
        search_commands.run_serve,
    ),
    "retrieve": Command(
        "turn a query set into a dataset of the index's nearest images",
        "Retrieve the top-k images of every query of a query set (prompts, embeddings, image "
        "URLs or files: parquet, CSV, a folder of them or .npy) into a parquet dataset of "
        "query_id, query, rank, id, uid, url, caption, similarity; optionally Fondant's shape "
        "and the images themselves. The index: --dataset in --root, --index-dir or --hf-repo.",
        retrieve_commands.add_retrieve_arguments,
        retrieve_commands.run_retrieve,
    ),
    "demo": Command(
        "run the whole graph offline on a sample served from 127.0.0.1, then search",
        "Serves drawn, captioned pictures on 127.0.0.1, trains (once, then cached) a small "
        "CLIP on such pictures, materialises every asset of the 'demo' dataset through Dagster "
        "with it, then searches.",
        pipeline_commands.add_demo_arguments,
        pipeline_commands.run_demo,
    ),
    "run": Command(
        "materialise a dataset through Dagster without the UI",
        "Adds the dataset's partitions, backfills metadata -> images -> embeddings, then "
        "builds faiss_index, id_mapping and hf_release, recording the runs in $DAGSTER_HOME's "
        "instance (an ephemeral one when unset).",
        pipeline_commands.add_run_arguments,
        pipeline_commands.run_run,
    ),
    "discover": Command(
        "add partitions for a dataset's source slices (what the sensor does)",
        "Lists the dataset's source, saves the partition manifest and adds the partitions "
        "the instance lacks, in $DAGSTER_HOME's instance.",
        pipeline_commands.add_dataset_arguments,
        pipeline_commands.run_discover,
    ),
    "k8s": Command(
        "review a Kubernetes deployment: `k8s render` prints a run's step pods",
        "Kubernetes deployment with Dagster's Helm chart (docs/deploy.md). `render` prints the "
        "Jobs k8s_job_executor would create for each step of one run, built by dagster-k8s.",
        k8s_commands.add_k8s_arguments,
        k8s_commands.run_k8s,
    ),
}

#: Errors a person can act on: printed as one line, exit status 1, no traceback.
EXPECTED_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clip-assets", description="Build, search and serve the CLIP indices of clip-assets."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except EXPECTED_ERRORS as error:
        print(f"clip-assets {args.command}: error: {_message(error)}", file=sys.stderr)
        return 1


def _message(error: BaseException) -> str:
    # KeyError's str() is the repr of its argument: show the text itself.
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)
