"""The offline demo: the whole graph through Dagster on a sample served from 127.0.0.1.

What it does: serves drawn scenes as real JPEG, PNG and WebP pictures, each captioned with what
it shows (and the broken answers a crawl meets), from a loopback server, writes DataComp-schema
parquet pointing at them, trains a small CLIP on such scenes (about a minute on two cores, then
cached in ``<workdir>/models`` by its recipe's hash; pretrained weights cannot be downloaded
here) and puts it in a private Hugging Face cache as ``hf-hub:clip-assets-demo/shapes-clip``,
then materialises every asset of the ``demo`` dataset with that model in a persistent Dagster
instance through the same driver as ``clip-assets run``, and searches the index by text,
printing beside each result what its picture shows (the scene drawn at its URL) and whether
that is what the query asks for.
Production runs keep ViT-B-32 / laion2b_s34b_b79k.

It points ``HF_HOME`` at that cache with ``HF_HUB_OFFLINE=1`` before huggingface_hub is first
imported (it reads both at import), so the production loading path loads the model as it
loads any Hub model.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from clip_assets.offline.demo_names import DEMO_MODEL_NAME

if TYPE_CHECKING:
    from clip_assets.offline.scenes import Scene
    from clip_assets.search import SearchResult

DEMO_DATASET = "demo"
ROWS_PER_PARTITION = 16


def demo_environment(workdir: Path) -> dict[str, str]:
    """The environment of the demo, also what ``dagster dev`` needs afterwards."""
    return {
        "HF_HOME": str(workdir / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "CLIP_ASSETS_ROOT": str(workdir / "data"),
        "CLIP_ASSETS_DATASETS": str(workdir / "datasets.yaml"),
        "CLIP_ASSETS_MODEL": DEMO_MODEL_NAME,
        "CLIP_ASSETS_PRETRAINED": "none",
    }


def run_demo(workdir: Path, query: str, good_images: int) -> int:
    """Prepares ``workdir`` afresh, runs the whole graph, prints a search; returns 0 or 1."""
    if "huggingface_hub" in sys.modules:
        raise RuntimeError("the demo must set HF_HOME before huggingface_hub is imported")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("source", "data", "dagster_home"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    os.environ.update(demo_environment(workdir))
    _write_instance_config(workdir / "dagster_home")
    (workdir / "datasets.yaml").write_text(
        f"datasets:\n  - name: {DEMO_DATASET}\n    source: {workdir / 'source'}\n"
        f"    rows_per_partition: {ROWS_PER_PARTITION}\n    allowed_hosts: [127.0.0.1]\n"
    )
    from clip_assets.cli.quiet import quiet_libraries

    quiet_libraries()
    from dagster import DagsterInstance

    from clip_assets.graph.driver import run_dataset
    from clip_assets.graph.environment import default_resources
    from clip_assets.offline.datacomp import write_datacomp_shard
    from clip_assets.offline.demo_model import describe_demo_model, prepare_demo_model
    from clip_assets.offline.image_server import ImageServer
    from clip_assets.offline.sample import sample_site
    from clip_assets.registry import find_dataset
    from clip_assets.search.stored import open_stored

    print(f"demo folder: {workdir}")
    model = prepare_demo_model(workdir / "models", workdir / "hf_home", log=print)
    print(describe_demo_model(model))
    site = sample_site(good=good_images)
    with ImageServer(site.routes) as server:
        rows = site.rows(server)
        half = len(rows) // 2
        write_datacomp_shard(workdir / "source", rows[:half])
        write_datacomp_shard(workdir / "source", rows[half:])
        print(f"serving {len(site.routes)} URLs on 127.0.0.1:{server.port}")
        spec = find_dataset(DEMO_DATASET)
        resources = default_resources()
        with DagsterInstance.get() as instance:
            outcome = run_dataset(spec, resources, instance)
    if not outcome.success:
        print(f"demo: partitions failed: {outcome.failed_ranges or outcome.whole_dataset_error}")
        return 1
    with open_stored(resources["storage"], DEMO_DATASET) as searcher:
        hits = searcher.search_texts([query], k=5)[0]
    print(f'\ntop {len(hits)} for "{query}", searched with {DEMO_MODEL_NAME}:')
    _print_hits(query, hits, site.scenes)
    env = " ".join(f"{k}={v}" for k, v in demo_environment(workdir).items())
    print(f"\nsearch again:  {env} clip-assets search --dataset {DEMO_DATASET} 'blue triangles'")
    print(
        f"search page:  {env} clip-assets serve --dataset {DEMO_DATASET}  (http://127.0.0.1:1234)"
    )
    print(f"see it in the UI:  {env} dagster dev -w workspace.yaml")
    return 0


def _print_hits(query: str, hits: list[SearchResult], scenes: dict[str, Scene]) -> None:
    """The results with what each picture shows (the scene the site drew at its URL, not the
    caption the index returned) and whether that is what the query asks for."""
    from clip_assets.cli.tables import print_table
    from clip_assets.offline.scene_query import query_description

    wanted = query_description(query)
    rows = []
    for rank, hit in enumerate(hits, 1):
        scene = scenes.get(urlsplit(hit.url or "").path)
        fits = (
            "?" if wanted is None or scene is None else "yes" if wanted.is_true_of(scene) else "no"
        )
        rows.append([rank, f"{hit.similarity:.4f}", fits, scene.caption if scene else "-", hit.url])
    print_table(["rank", "similarity", "matches", "the picture shows", "url"], rows)
    if wanted is not None:
        matching = sum(row[2] == "yes" for row in rows)
        print(f"{matching} of {len(rows)} pictures show what the query asks for")


def _write_instance_config(dagster_home: Path) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    shipped = Path(__file__).resolve().parent.parent / "dagster.yaml"
    config = shipped.read_text() if shipped.exists() else "telemetry:\n  enabled: false\n"
    (dagster_home / "dagster.yaml").write_text(config)
