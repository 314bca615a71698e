"""``<ds>/embeddings``: L2-normalised CLIP image embeddings of a slice's ``ok`` images."""

import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.download.summary import Counts, stored_summary
from clip_assets.embed.embed_table import embed_image_file
from clip_assets.embed.identity import made_from, with_identity
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import model_line
from clip_assets.graph.partition_runs import run_partitions
from clip_assets.graph.progress import StepProgress
from clip_assets.index.verification import check_embeddings
from resources.clip_model import ClipModelResource
from resources.storage import StorageResource

VECTORS_CHECK = "finite_unit_vectors"


class EmbeddingsConfig(Config):
    """Run options of the embeddings asset."""

    reembed: bool = Field(
        default=False,
        description="Embed again even a partition whose stored embeddings were made by the "
        "same model from the same ok images (otherwise they are kept).",
    )


def build_embeddings_asset(graph: DatasetGraph) -> AssetsDefinition:
    ds = graph.name

    @asset(
        **graph.partitioned_stage("embeddings", upstream="images"),
        kinds={"pytorch", "parquet"},
        pool="gpu",
        check_specs=[
            AssetCheckSpec(
                VECTORS_CHECK,
                asset=graph.key("embeddings"),
                blocking=True,
                description="Every vector is finite, unit-norm and of the model's dimension; "
                "a partition that fails is not written.",
            )
        ],
    )
    def embeddings(
        context: AssetExecutionContext,
        config: EmbeddingsConfig,
        storage: StorageResource,
        clip_model: ClipModelResource,
    ) -> MaterializeResult:
        """CLIP image embeddings of the slice's images with status ``ok``.

        Reads: ``<ds>/images/<partition>.parquet``. Writes:
        ``<ds>/embeddings/<partition>.parquet`` (uid, url, embedding[dim]), L2-normalised, rows
        in images order, with the model identity in the file's schema metadata. Guarantees:
        only ``ok`` rows are embedded; every vector is finite and unit-norm, or nothing is
        written; the model is loaded once for all partitions of the run; stored embeddings
        made by the same model from the same ok images are kept, not computed again.
        """
        context.log.info(f"loading {clip_model.model_name} / {clip_model.pretrained or 'no tag'}")
        loading = time.monotonic()
        encoder = clip_model.get_encoder()
        context.log.info(
            f"loaded {model_line(encoder.identity)} on {encoder.device} in "
            f"{time.monotonic() - loading:.1f}s"
        )
        checked: dict[str, dict] = {}

        def kept(key: str, images_digest: str | None) -> dict | None:
            """The stored partition's metadata when it already holds these embeddings."""
            target = paths.embeddings(ds, key)
            if config.reembed or not storage.exists(target):
                return None
            if not made_from(storage.read_schema(target), encoder.identity, images_digest):
                return None
            context.log.info(f"{key}: stored embeddings are this model's, of these images: kept")
            return {
                "dagster/row_count": storage.read_parquet_metadata(target).num_rows,
                "dim": encoder.dim,
                "model": model_line(encoder.identity),
                "kept": True,
                "path": MetadataValue.path(storage.uri(target)),
            }

        def materialize_one(key: str) -> dict:
            source = paths.images(ds, key)
            stored = storage.read_parquet_metadata(source)
            counts = stored_summary(stored.metadata) or {}
            images_digest = counts.get("content_sha256")
            if (existing := kept(key, images_digest)) is not None:
                return existing
            started = time.monotonic()
            progress = StepProgress(context.log.info, key, None, "images embedded")

            def on_progress(done: int, total: int) -> None:
                rate = done / max(time.monotonic() - started, 1e-9)
                progress.update(done, f"of {total}, {rate:.0f} images/s")

            legacy = Counts() if images_digest is None else None
            with storage.local_file(source) as local:
                table = embed_image_file(
                    local,
                    encoder,
                    dtype=clip_model.output_dtype,
                    on_progress=on_progress,
                    counts=legacy,
                )
            elapsed = time.monotonic() - started
            progress.close(f"{table.num_rows / max(elapsed, 1e-9):.1f} images/s")
            passed, check = check_embeddings(table, dim=encoder.dim)
            if not passed:
                # Nothing is written: a NaN or off-norm vector must never reach the index.
                raise Failure(
                    description=f"{key}: embeddings are not finite unit vectors of {encoder.dim}",
                    metadata={"check": MetadataValue.json(check)},
                )
            checked[key] = check
            if legacy is not None:  # an images file from before files recorded their counts
                images_digest = legacy.content.hexdigest()
            stamped = with_identity(table, encoder.identity, images_digest)
            storage.write_table(paths.embeddings(ds, key), stamped)
            return {
                "dagster/row_count": table.num_rows,
                "images_in": stored.num_rows,
                "images_per_s": round(table.num_rows / elapsed, 1) if elapsed > 0 else 0.0,
                "dim": encoder.dim,
                "model": model_line(encoder.identity),
                "kept": False,
                "path": MetadataValue.path(storage.uri(paths.embeddings(ds, key))),
            }

        def vectors_check() -> list[AssetCheckResult]:
            norms = [c[b] for c in checked.values() for b in ("min_norm", "max_norm")]
            return [
                AssetCheckResult(
                    check_name=VECTORS_CHECK,
                    passed=True,
                    metadata={
                        "rows": sum(c["rows"] for c in checked.values()),
                        "dim": encoder.dim,
                        "max_norm_error": max(
                            (abs(n - 1.0) for n in norms if n is not None), default=0.0
                        ),
                    },
                )
            ]

        return run_partitions(context, materialize_one, vectors_check)

    return embeddings
