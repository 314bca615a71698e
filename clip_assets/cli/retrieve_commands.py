"""``clip-assets retrieve``: a query set in, a dataset of the index's matching images out.

The query set and the settings are checked (file readable, query column found, knobs valid)
before the index opens or a model loads. The work is ``retrieve.build_retrieval_dataset``;
the index comes from ``--dataset`` in the storage root, ``--index-dir`` (any layout: our
release, Fondant's, clip back's) or ``--hf-repo``, as for ``clip-assets search``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_assets.cli.search_commands import add_index_source, add_model_flags, open_searcher
from clip_assets.cli.tables import print_table
from clip_assets.download.download_settings import RESIZE_MODES, DownloadSettings
from clip_assets.retrieve.retrieve_settings import DUPLICATE_SIMILARITY, RetrievalSettings

if TYPE_CHECKING:
    from clip_assets.retrieve.retrieval_dataset import RetrievalOutputs


def add_retrieve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", type=Path, required=True, help="parquet, CSV, folder or .npy")
    parser.add_argument("--out", type=Path, required=True, help="the hits (parquet)")
    add_index_source(parser)
    add_model_flags(parser)
    queries = parser.add_argument_group("query set (default: detected from column names)")
    queries.add_argument("--query-column", help="the column holding the queries")
    queries.add_argument("--id-column", help="the column holding the query ids")
    queries.add_argument(
        "--kind", choices=("text", "embedding", "image", "image_url", "image_file")
    )
    hits = parser.add_argument_group("which hits to keep")
    hits.add_argument(
        "-k", type=int, default=RetrievalSettings.k, help="neighbours searched per query"
    )
    hits.add_argument("--min-similarity", type=float, help="drop hits below this similarity")
    hits.add_argument("--max-per-query", type=int, help="keep at most this many per query")
    hits.add_argument("--dedup", action="store_true", help="no image twice in the whole result")
    hits.add_argument(
        "--dedup-similarity",
        type=float,
        default=DUPLICATE_SIMILARITY,
        help="near-identical from this cosine",
    )
    hits.add_argument("--dedup-exact", action="store_true", help="dedup by id and url only")
    hits.add_argument(
        "--batch-size", type=int, default=RetrievalSettings.batch_size, help="queries per batch"
    )
    outputs = parser.add_argument_group("more outputs")
    outputs.add_argument("--fondant", type=Path, help="also write Fondant's shape here")
    outputs.add_argument("--images", type=Path, help="also download every hit's image here")
    outputs.add_argument(
        "--image-size", type=int, default=DownloadSettings.image_size, help="downloaded size"
    )
    outputs.add_argument(
        "--resize-mode", default=DownloadSettings.resize_mode, choices=RESIZE_MODES
    )
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let image-URL queries and downloads reach LAN/loopback addresses",
    )


def run_retrieve(args: argparse.Namespace) -> int:
    from clip_assets.retrieve.query_set import QuerySet
    from clip_assets.retrieve.retrieval_dataset import RetrievalOutputs, build_retrieval_dataset

    queries = QuerySet(
        args.queries, query_column=args.query_column, kind=args.kind, id_column=args.id_column
    )
    settings = RetrievalSettings(
        k=args.k,
        min_similarity=args.min_similarity,
        max_per_query=args.max_per_query,
        deduplicate=args.dedup,
        duplicate_similarity=None if args.dedup_exact else args.dedup_similarity,
        batch_size=args.batch_size,
        allow_private_urls=args.allow_private_urls,
    )
    download = DownloadSettings(
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        allow_private_addresses=args.allow_private_urls,
    )
    outputs = RetrievalOutputs(hits=args.out, fondant=args.fondant, images=args.images)
    for path in (outputs.hits, outputs.fondant, outputs.images):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    with open_searcher(args) as searcher:
        summary = build_retrieval_dataset(searcher, queries, settings, outputs, download=download)
    _print_summary(summary, outputs)
    return 0


def _print_summary(summary: dict[str, Any], outputs: RetrievalOutputs) -> None:
    similarity = summary["similarity"]
    rows = [
        ["queries", summary["queries"]],
        ["queries failed", summary["queries_failed"]],
        ["hits", summary["hits"]],
        ["similarity p50", f"{similarity['p50']:.4f}" if similarity else "-"],
        ["queries/s", f"{summary['queries_per_s']:.1f}"],
    ]
    rows += [[f"failed: {reason}", n] for reason, n in summary["failure_reasons"].items()]
    if "images" in summary:
        rows.append(["images ok", f"{summary['images']['ok']}/{summary['images']['attempted']}"])
    for name in ("hits", "fondant", "images"):
        path = getattr(outputs, name)
        if path is not None:
            rows.append([f"wrote {name}", str(path)])
    print_table(["retrieval", "value"], rows)
