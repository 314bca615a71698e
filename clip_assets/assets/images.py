"""``<ds>/images``: every URL of a slice fetched, checked and resized, with a status each; and
its non-blocking ``download_health`` check (success rate and dominant failure reasons)."""

import time

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.download.completeness import settings_changed, why_incomplete
from clip_assets.download.health import ADVICE, HealthThresholds, HealthWatch, assess_summary
from clip_assets.download.shard_download import (
    DownloadProgress,
    download_shard_to_file,
    retry_failed_to_file,
)
from clip_assets.download.summary import stored_summary, with_elapsed
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import images_metadata
from clip_assets.graph.partition_runs import PartitionCheck, run_partitions
from clip_assets.graph.progress import StepProgress
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
    health_min_success_rate: float = Field(
        default=HealthThresholds.min_success_rate,
        description="download_health warns when a partition's ok share is under this.",
    )
    health_max_reason_share: float = Field(
        default=HealthThresholds.max_reason_share,
        description="download_health warns when one failure group (DNS, unreachable hosts, "
        "429, 5xx, robots.txt failures) is over this share of a partition's rows.",
    )
    health_min_rows: int = Field(
        default=HealthThresholds.min_rows,
        description="Rows a partition needs before download_health judges it.",
    )

    def thresholds(self) -> HealthThresholds:
        return HealthThresholds(
            self.health_min_success_rate, self.health_max_reason_share, self.health_min_rows
        )


HEALTH_CHECK = "download_health"
_HEALTH_DESCRIPTION = (
    "Warns (never blocks) when a partition's success rate is under the floor or one group of "
    "failure reasons dominates; thresholds in the images run config (health_*). The run log "
    "warns as soon as a running partition crosses them. What to do: "
    + "; ".join(f"{group}: {advice}" for group, advice in ADVICE.items())
    + "."
)


def build_images_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec

    @asset(
        **graph.partitioned_stage("images", upstream="metadata"),
        kinds={"parquet"},
        check_specs=[
            AssetCheckSpec(
                HEALTH_CHECK,
                asset=graph.key("images"),
                blocking=False,
                description=_HEALTH_DESCRIPTION,
                partitions_def=graph.partitions,
            )
        ],
    )
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
        thresholds = config.thresholds()
        problems: dict[str, list[str]] = {}

        def stored_answer(key: str, target: str, metadata: pa.Table) -> tuple[dict | None, bool]:
            """The stored file's counts when it already answers ``metadata`` (else None), and
            whether its ok rows may stand in for rows a new download fails (same settings)."""
            if not storage.exists(target):
                return None, False
            footer = storage.read_parquet_metadata(target)
            schema_metadata = footer.schema.to_arrow_schema().metadata
            reusable = settings_changed(schema_metadata, settings) is None
            if config.refetch or config.retry_failed_only:
                return None, reusable
            reason = why_incomplete(
                footer.metadata,
                schema_metadata,
                storage.read_table(target, ["uid"]).column("uid"),
                metadata,
                settings,
            )
            if reason is not None:
                context.log.info(f"{key}: fetching again: {reason}")
                return None, reusable
            return stored_summary(footer.metadata), reusable

        def materialize_one(key: str) -> dict:
            metadata = storage.read_table(paths.metadata(spec.name, key))
            target = paths.images(spec.name, key)
            kept, reusable = stored_answer(key, target, metadata)
            if kept is not None:
                context.log.info(f"{key}: stored images are complete for the metadata: kept")
                judge(key, kept)
                return {**images_metadata(kept, storage.uri(target)), "kept": True}
            watch = HealthWatch(thresholds)
            bar = StepProgress(context.log.info, key, metadata.num_rows, "rows")

            def on_progress(progress: DownloadProgress) -> None:
                # The downloader reports every few seconds and once at the end.
                bar.update(progress.done, f"{progress.ok} ok, {progress.images_per_s:.1f} images/s")
                for problem in watch.new(progress):
                    context.log.warning(f"{key} (at {progress.done} rows): {problem.advice}")

            started = time.monotonic()
            # Streamed to a local file row group by row group, so memory stays bounded however
            # large the partition, then stored in one atomic upload.
            with storage.scratch(f"images-{key}") as work:
                local = work / f"{key}.parquet"
                if config.retry_failed_only and storage.exists(target):
                    previous = work / "previous.parquet"
                    storage.download_file(target, previous)
                    network = retry_failed_to_file(
                        previous, metadata, settings, local, on_progress=on_progress
                    )
                else:
                    # A refetch never turns a stored ok row into a failure: with the same
                    # settings, the stored row stands in for a row that fails this time.
                    previous = None
                    if reusable:
                        previous = work / "previous.parquet"
                        storage.download_file(target, previous)
                    network = download_shard_to_file(
                        metadata, settings, local, previous=previous, on_progress=on_progress
                    )
                bar.close()
                counts = stored_summary(pq.read_metadata(local).metadata)
                elapsed = time.monotonic() - started
                summary = {**with_elapsed(counts, elapsed), **network.as_summary()}
                storage.upload_file(local, target)
            context.log.info(
                f"{key}: {summary['ok']}/{summary['attempted']} ok "
                f"({summary['success_rate']:.1%}), {summary['images_per_s']:.1f} images/s"
            )
            judge(key, summary)
            return {**images_metadata(summary, storage.uri(target)), "kept": False}

        def judge(key: str, summary: dict) -> None:
            found = assess_summary(summary, thresholds)
            if found:
                problems[key] = [problem.advice for problem in found]

        def health(key: str) -> tuple[bool, dict]:
            advice = problems.get(key, [])
            return not advice, {"problems": "\n".join(f"{key}: {a}" for a in advice) or "none"}

        return run_partitions(
            context, materialize_one, partition_check=PartitionCheck(HEALTH_CHECK, health)
        )

    return images
