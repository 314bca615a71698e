"""``<ds>/retrieval/<name>``: a named query set's nearest images in the index, as a dataset."""

import tempfile
from pathlib import Path

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset
from pydantic import Field

from clip_assets import __version__, paths
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import retrieval_metadata
from clip_assets.graph.query_sets import local_query_set
from clip_assets.graph.settings_config import config_class, settings_from_config
from clip_assets.retrieve.query_set import QuerySet
from clip_assets.retrieve.retrieval_dataset import RetrievalOutputs, build_retrieval_dataset
from clip_assets.retrieve.retrieve_settings import RetrievalSettings
from clip_assets.search.stored import open_stored
from resources.downloader import DownloaderResource
from resources.storage import StorageResource

RetrievalConfig = config_class(
    "RetrievalConfig",
    RetrievalSettings,
    "Which neighbours of each query are kept (clip_assets.retrieve.retrieve_settings).",
    queries=(
        str | None,
        Field(
            default=None,
            description="Read the queries from this location (below the storage root unless "
            "absolute) instead of the registry's.",
        ),
    ),
    fondant=(
        bool,
        Field(
            default=True,
            description="Also write fondant.parquet (id, prompt_id, prompt, image_url), the "
            "shape Fondant's retrieval components produce.",
        ),
    ),
    download_images=(
        bool,
        Field(
            default=False,
            description="Also download every hit's image through the images stage (the "
            "downloader's settings) into images.parquet: a training set with image bytes.",
        ),
    ),
)


def build_retrieval_asset(graph: DatasetGraph, name: str, location: str) -> AssetsDefinition:
    ds = graph.name
    outputs = (paths.HITS_NAME, paths.FONDANT_NAME, paths.RETRIEVED_IMAGES_NAME)

    @asset(
        key=graph.retrieval_key(name),
        deps=[graph.key("faiss_index"), graph.key("id_mapping"), graph.query_set_key(name)],
        group_name=ds,
        code_version=__version__,
        kinds={"parquet"},
    )
    def retrieval(
        context: AssetExecutionContext,
        config: RetrievalConfig,  # type: ignore[valid-type]
        storage: StorageResource,
        downloader: DownloaderResource,
    ) -> MaterializeResult:
        """The query set's top-k images from the index, filtered, as a dataset.

        Reads: the query set (its registry location, or ``queries`` from the config),
        ``<ds>/index/`` and ``<ds>/id_mapping/``; queries are embedded with the index's
        ``model.json`` model. Writes: ``<ds>/retrieval/<name>/hits.parquet`` (RETRIEVAL_SCHEMA:
        query_id, query, rank, id, uid, url, caption, similarity), and when asked
        ``fondant.parquet`` and ``images.parquet`` (every hit with its image, status and
        reason); outputs of an earlier run that this run did not make are removed.
        Guarantees: hits grouped by query in query-set order, rank 1 the most similar; every
        query either has its hits or is counted as failed with a reason; with deduplication no
        image appears twice in the whole result. Becomes stale when the index is rebuilt.
        """
        settings = settings_from_config(RetrievalSettings, config)
        download = downloader.settings_for(graph.spec.allowed_hosts)

        def on_batch(summary: dict) -> None:
            context.log.info(f"{name}: {summary['queries']} queries, {summary['hits']} hits")

        with (
            local_query_set(storage, config.queries or location) as queries,
            open_stored(storage, ds) as searcher,
            tempfile.TemporaryDirectory(prefix="clip-assets-retrieval-") as work,
        ):
            local = {file: Path(work) / file for file in outputs}
            wanted = RetrievalOutputs(
                hits=local[paths.HITS_NAME],
                fondant=local[paths.FONDANT_NAME] if config.fondant else None,
                images=local[paths.RETRIEVED_IMAGES_NAME] if config.download_images else None,
            )
            summary = build_retrieval_dataset(
                searcher, QuerySet(queries), settings, wanted, download=download, on_batch=on_batch
            )
            for file, path in local.items():
                target = paths.retrieval_file(ds, name, file)
                if path.exists():
                    storage.upload_file(path, target)
                elif storage.exists(target):
                    storage.delete(target)
        uri = storage.uri(paths.retrieval_dir(ds, name))
        return MaterializeResult(metadata=retrieval_metadata(summary, uri))

    return retrieval
