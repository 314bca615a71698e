"""``<ds>/images``: every URL of a slice fetched, checked and resized, with a status each."""

import tempfile
import time
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.download.shard_download import (
    DownloadProgress,
    download_shard_to_file,
    retry_failed_to_file,
)
from clip_assets.download.summary import summarize_file
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import images_metadata
from clip_assets.graph.partition_runs import run_partitions
from resources.downloader import DownloaderResource
from resources.storage import StorageResource


class ImagesConfig(Config):
    """Run options of the images asset."""

    retry_failed_only: bool = Field(
        default=False,
        description="Re-download only the transient failures (timeouts, 5xx, 429, connection "
        "errors) of already materialised partitions and merge them in; other rows are kept.",
    )


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
            # Streamed to a local file row group by row group, so memory stays bounded however
            # large the partition, then stored in one atomic upload.
            with tempfile.TemporaryDirectory(prefix="clip-assets-images-") as work:
                local = Path(work) / f"{key}.parquet"
                if config.retry_failed_only and storage.exists(target):
                    previous = Path(work) / "previous.parquet"
                    storage.download_file(target, previous)
                    retry_failed_to_file(
                        previous, metadata, settings, local, on_progress=on_progress
                    )
                else:
                    download_shard_to_file(metadata, settings, local, on_progress=on_progress)
                elapsed = time.monotonic() - started
                summary = summarize_file(local, elapsed_s=elapsed)
                storage.upload_file(local, target)
            context.log.info(
                f"{key}: {summary['ok']}/{summary['attempted']} ok "
                f"({summary['success_rate']:.1%}), {summary['images_per_s']:.1f} images/s"
            )
            return images_metadata(summary, storage.uri(target))

        return run_partitions(context, materialize_one)

    return images
