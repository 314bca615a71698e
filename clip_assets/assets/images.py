"""``<ds>/images``: every URL of a slice fetched, checked and resized, with a status each."""

import time

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.assets.dataset import DatasetGraph
from clip_assets.assets.partition_runs import run_partitions
from clip_assets.download.stage import DownloadProgress, download_shard, retry_failed
from clip_assets.download.summary import summarize
from resources.downloader import DownloaderResource
from resources.storage import StorageResource


class ImagesConfig(Config):
    """Run options of the images asset."""

    retry_failed_only: bool = Field(
        default=False,
        description="Re-download only the transient failures (timeouts, 5xx, 429, connection "
        "errors) of already materialised partitions and merge them in; other rows are kept.",
    )


def _summary_metadata(summary: dict) -> dict:
    """Scalars as metadata entries, mappings (reason counts, domains) as JSON."""
    return {
        name: MetadataValue.json(value) if isinstance(value, dict | list) else value
        for name, value in summary.items()
        if value is not None
    }


def build_images_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec

    @asset(**graph.partitioned_stage("images", upstream="metadata"), kinds={"parquet"})
    def images(
        context: AssetExecutionContext,
        config: ImagesConfig,
        storage: StorageResource,
        downloader: DownloaderResource,
    ) -> MaterializeResult:
        """Downloaded, resized images of one slice, one row per URL with status and reason.

        Reads: ``<ds>/metadata/<partition>.parquet``. Writes: ``<ds>/images/<partition>.parquet``
        (IMAGES_SCHEMA). Guarantees: every metadata row appears exactly once, in order, with a
        status (ok, failed, opted_out, hash_mismatch, skipped) and, unless ok, a reason.
        """
        settings = downloader.settings_for(spec.allowed_hosts)

        def materialize_one(key: str) -> dict:
            metadata = storage.read_table(paths.metadata(spec.name, key))

            def on_progress(progress: DownloadProgress) -> None:
                # The downloader reports every few seconds and once at the end.
                context.log.info(
                    f"{key}: {progress.done}/{progress.total} done, {progress.ok} ok, "
                    f"{progress.images_per_s:.1f} images/s"
                )

            started = time.monotonic()
            target = paths.images(spec.name, key)
            if config.retry_failed_only and storage.exists(target):
                previous = storage.read_table(target)
                table = retry_failed(previous, metadata, settings, on_progress=on_progress)
            else:
                table = download_shard(metadata, settings, on_progress=on_progress)
            elapsed = time.monotonic() - started
            storage.write_table(target, table)
            summary = summarize(table, elapsed_s=elapsed)
            context.log.info(f"{key}: {summary}")
            return {
                "dagster/row_count": table.num_rows,
                **_summary_metadata(summary),
                "path": MetadataValue.path(storage.uri(target)),
            }

        return run_partitions(context, materialize_one)

    return images
