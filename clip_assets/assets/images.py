"""``<ds>/images``: every URL of a slice fetched, checked and resized, with a status each."""

import time

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.download.completeness import why_incomplete
from clip_assets.download.shard_download import (
    DownloadProgress,
    download_shard_to_file,
    retry_failed_to_file,
)
from clip_assets.download.summary import stored_summary, with_elapsed
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
    refetch: bool = Field(
        default=False,
        description="Download again even a partition whose stored images file is complete for "
        "its metadata and was made with the same output settings (otherwise it is kept).",
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
        (IMAGES_SCHEMA), with the download settings in its schema and its counts in its footer.
        Guarantees: every metadata row appears exactly once, in order, with a status (ok,
        failed, opted_out, hash_mismatch, skipped) and, unless ok, a reason; a stored file
        that is complete for its metadata under the same output settings is kept, not fetched
        again (a rerun after a crash repeats no finished partition).
        """
        settings = downloader.settings_for(spec.allowed_hosts)

        def stored_answer(key: str, target: str, metadata: pa.Table) -> dict | None:
            """The stored file's counts when it already answers ``metadata``, else None."""
            if config.refetch or config.retry_failed_only or not storage.exists(target):
                return None
            footer = storage.read_parquet_metadata(target)
            reason = why_incomplete(
                footer.metadata,
                footer.schema.to_arrow_schema().metadata,
                storage.read_table(target, ["uid"]).column("uid"),
                metadata,
                settings,
            )
            if reason is not None:
                context.log.info(f"{key}: fetching again: {reason}")
                return None
            return stored_summary(footer.metadata)

        def materialize_one(key: str) -> dict:
            metadata = storage.read_table(paths.metadata(spec.name, key))
            target = paths.images(spec.name, key)
            kept = stored_answer(key, target, metadata)
            if kept is not None:
                context.log.info(f"{key}: stored images are complete for the metadata: kept")
                return {**images_metadata(kept, storage.uri(target)), "kept": True}

            def on_progress(progress: DownloadProgress) -> None:
                # The downloader reports every few seconds and once at the end.
                context.log.info(
                    f"{key}: {progress.done}/{progress.total} done, {progress.ok} ok, "
                    f"{progress.images_per_s:.1f} images/s"
                )

            started = time.monotonic()
            # Streamed to a local file row group by row group, so memory stays bounded however
            # large the partition, then stored in one atomic upload.
            with storage.scratch(f"images-{key}") as work:
                local = work / f"{key}.parquet"
                if config.retry_failed_only and storage.exists(target):
                    previous = work / "previous.parquet"
                    storage.download_file(target, previous)
                    retry_failed_to_file(
                        previous, metadata, settings, local, on_progress=on_progress
                    )
                else:
                    download_shard_to_file(metadata, settings, local, on_progress=on_progress)
                counts = stored_summary(pq.read_metadata(local).metadata)
                summary = with_elapsed(counts, time.monotonic() - started)
                storage.upload_file(local, target)
            context.log.info(
                f"{key}: {summary['ok']}/{summary['attempted']} ok "
                f"({summary['success_rate']:.1%}), {summary['images_per_s']:.1f} images/s"
            )
            return {**images_metadata(summary, storage.uri(target)), "kept": False}

        return run_partitions(context, materialize_one)

    return images
