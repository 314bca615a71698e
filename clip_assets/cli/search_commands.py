"""``clip-assets search`` and ``clip-assets serve``: query and serve built indices.

Arguments are checked (files readable, exactly one query kind, index given once) before the
index opens or a model loads, so a mistake answers in well under a second. The work lives in
``clip_assets.search`` and ``clip_assets.serve``; this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clip_assets.cli.tables import print_table
from clip_assets.model_defaults import DEFAULT_MODEL_NAME, DEFAULT_PRETRAINED
from clip_assets.paths import storage_root
from clip_assets.serve.limits import Limits

if TYPE_CHECKING:
    from clip_assets.search import ClipSearcher, SearchResult


# -- search ---------------------------------------------------------------------------------


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="caption(s) to search for")
    query = parser.add_argument_group("query by image or vector instead of text")
    query.add_argument("--image", action="append", type=Path, help="image file (repeatable)")
    query.add_argument("--image-url", action="append", help="image URL (repeatable)")
    query.add_argument("--embedding", type=Path, help=".npy file: one vector or one per row")
    add_index_source(parser)
    add_model_flags(parser)
    parser.add_argument("-k", type=int, default=10, help="results per query")
    parser.add_argument("--dedup", action="store_true", help="drop repeated urls/uids")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--allow-private-urls", action="store_true", help="let --image-url reach LAN/loopback"
    )


def run_search(args: argparse.Namespace) -> int:
    kinds = [bool(args.texts), bool(args.image), bool(args.image_url), args.embedding is not None]
    if sum(kinds) != 1:
        raise ValueError(
            "give exactly one kind of query: TEXT, --image, --image-url or --embedding"
        )
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, not {args.k}")
    # Read and check the query files first: an unreadable image fails before any model loads.
    images = [_read_image(path) for path in args.image or []]
    vectors = _read_embeddings(args.embedding) if args.embedding is not None else None
    with open_searcher(args) as searcher:
        options = {"deduplicate": args.dedup}
        if args.texts:
            labels, results = args.texts, searcher.search_texts(args.texts, args.k, **options)
        elif images:
            labels = [str(path) for path in args.image]
            results = searcher.search_images(images, args.k, **options)
        elif args.image_url:
            labels = args.image_url
            results = searcher.search_image_urls(
                args.image_url, args.k, allow_private=args.allow_private_urls, **options
            )
        else:
            labels = [f"{args.embedding}[{row}]" for row in range(len(vectors))]
            results = searcher.search(vectors, args.k, **options)
    _print_results(labels, results, as_json=args.json)
    return 0


def _read_image(path: Path) -> bytes:
    """The bytes of an image file, refused (naming the file) unless they decode within the
    downloader's pixel limit."""
    from clip_assets.download.decode_guard import ImageRefused, decode_checked
    from clip_assets.download.download_settings import DownloadSettings

    data = path.read_bytes()
    try:
        decode_checked(data, DownloadSettings().max_pixels)
    except ImageRefused as error:
        raise ValueError(f"{path}: {error}") from error
    return data


def _read_embeddings(path: Path) -> Any:
    import numpy as np

    vectors = np.load(path)
    return vectors[None, :] if vectors.ndim == 1 else vectors


def _print_results(labels: list[str], results: list[list[SearchResult]], as_json: bool) -> None:
    if as_json:
        blocks = [
            {"query": label, "results": [r.to_dict() for r in rows]}
            for label, rows in zip(labels, results, strict=True)
        ]
        print(json.dumps(blocks if len(blocks) > 1 else blocks[0]["results"], indent=1))
        return
    for n, (label, rows) in enumerate(zip(labels, results, strict=True)):
        if len(labels) > 1:
            print(("\n" if n else "") + f"# {label}")
        print_table(
            ["rank", "similarity", "url", "caption"],
            [
                [rank, f"{r.similarity:.4f}", r.url or "-", " ".join((r.caption or "").split())]
                for rank, r in enumerate(rows, 1)
            ],
        )


# -- serve ----------------------------------------------------------------------------------


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="NAME=LOCATION",
        help="an index folder (any layout) or hf:<owner>/<repo> (repeatable)",
    )
    parser.add_argument(
        "--dataset", action="append", default=[], help="a dataset in --root (repeatable)"
    )
    parser.add_argument("--root", default=storage_root(), help="storage root (local or gs://)")
    add_model_flags(parser)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback)")
    parser.add_argument("--port", type=int, default=1234, help="port")
    parser.add_argument("--max-k", type=int, default=10_000, help="largest num_images allowed")
    parser.add_argument(
        "--max-running", type=int, default=Limits.max_running, help="queries run at once"
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=Limits.max_waiting,
        help="queries queued beyond those; more are answered 503 with Retry-After",
    )
    parser.add_argument(
        "--allow-private-urls", action="store_true", help="let image_url reach LAN/loopback"
    )
    parser.add_argument(
        "--lazy-model",
        action="store_true",
        help="load the CLIP model on the first text or image query, not at start-up",
    )


def run_serve(args: argparse.Namespace) -> int:
    named = [_split_index(spec) for spec in args.index] + [(d, None) for d in args.dataset]
    if not named:
        raise ValueError("give at least one --index NAME=LOCATION or --dataset NAME")
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"index names must be unique: {names}")
    from clip_assets.serve import serve

    limits = Limits(max_k=args.max_k, max_running=args.max_running, max_waiting=args.max_waiting)
    with ExitStack() as stack:
        searchers = {}
        for name, location in named:
            source = {"dataset": name, "root": args.root} if location is None else location
            searchers[name] = stack.enter_context(_open(source, args))
        serve(
            searchers,
            host=args.host,
            port=args.port,
            limits=limits,
            allow_private_urls=args.allow_private_urls,
            load_models=not args.lazy_model,
            say=lambda line: print(line, flush=True),
        )
    return 0


def _split_index(spec: str) -> tuple[str, str]:
    name, sep, location = spec.partition("=")
    if not sep or not name or not location:
        raise ValueError(f"--index takes NAME=LOCATION, not {spec!r}")
    return name, location


# -- shared ---------------------------------------------------------------------------------


def add_index_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index (one of)")
    group.add_argument("--dataset", help="dataset name in the storage root")
    group.add_argument("--root", default=storage_root(), help="storage root (local or gs://)")
    group.add_argument("--index-dir", type=Path, help="a local index folder of any layout")
    group.add_argument("--hf-repo", help="a Hugging Face dataset repo id")
    group.add_argument("--revision", help="revision of --hf-repo")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "query model (default: the index's model.json, "
        f"else {DEFAULT_MODEL_NAME} {DEFAULT_PRETRAINED})"
    )
    group.add_argument("--model", help="open_clip model name")
    group.add_argument("--pretrained", help="open_clip pretrained tag or weights file; 'none'")
    group.add_argument("--device", help="auto, cpu, cuda or cuda:N")


@contextmanager
def open_searcher(args: argparse.Namespace) -> Iterator[ClipSearcher]:
    chosen = [args.dataset, args.index_dir, args.hf_repo]
    if sum(x is not None for x in chosen) != 1:
        raise ValueError("give exactly one of --dataset, --index-dir or --hf-repo")
    if args.index_dir is not None:
        source: Any = str(args.index_dir)
    elif args.hf_repo is not None:
        source = f"hf:{args.hf_repo}"
    else:
        source = {"dataset": args.dataset, "root": args.root}
    with _open(source, args) as searcher:
        yield searcher


@contextmanager
def _open(source: str | dict[str, str], args: argparse.Namespace) -> Iterator[ClipSearcher]:
    """A searcher for a folder, ``hf:<repo>`` or ``{"dataset", "root"}``, model flags applied."""
    from clip_assets.search import ClipSearcher

    if isinstance(source, dict):
        with _open_dataset(source["dataset"], source["root"]) as searcher:
            yield _with_model_flags(searcher, args)
    elif source.startswith("hf:"):
        searcher = ClipSearcher.from_hub(source[3:], revision=getattr(args, "revision", None))
        yield _with_model_flags(searcher, args)
    else:
        yield _with_model_flags(ClipSearcher.open(source), args)


@contextmanager
def _open_dataset(dataset: str, root: str) -> Iterator[ClipSearcher]:
    from clip_assets.search import ClipSearcher

    if not root.startswith("gs://"):
        folder = Path(root) / dataset
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no index in {folder.resolve()}: no dataset {dataset!r} in that root (give "
                "--root or $CLIP_ASSETS_ROOT, or build it first with `clip-assets run`)"
            )
        yield ClipSearcher.open(folder)
        return
    from clip_assets.search.stored import open_stored
    from resources.storage import storage_for_root

    with open_stored(storage_for_root(root), dataset) as searcher:
        yield searcher


def _with_model_flags(searcher: ClipSearcher, args: argparse.Namespace) -> ClipSearcher:
    model = searcher.model.override(model_name=args.model, device=args.device)
    if args.pretrained is not None:
        pretrained = None if args.pretrained.lower() == "none" else args.pretrained
        model = replace(model, pretrained=pretrained)
    searcher.model = model
    return searcher
