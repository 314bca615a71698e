"""``<ds>/hf_release``: the release folder, written to storage and published when configured."""

import json

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from clip_assets import paths
from clip_assets.download.download_settings import recorded_settings
from clip_assets.download.health import HealthThresholds
from clip_assets.graph.automation import rebuild_condition
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import report_metadata
from clip_assets.index.shards import read_shard_list
from clip_assets.release.card import REPORT_PNG
from clip_assets.release.inputs import (
    ReleaseInputs,
    code_version,
    download_counts,
    image_settings,
    released_partitions,
    source_lineage,
)
from clip_assets.release.release_folder import write_release_folder
from clip_assets.release.upload import upload_release
from resources.hub import HubResource
from resources.storage import StorageResource


def build_hf_release_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec
    ds = spec.name

    @asset(
        **graph.whole_stage("hf_release", ["faiss_index", "id_mapping"]),
        kinds={"huggingface"},
        automation_condition=rebuild_condition(graph, "hf_release"),
    )
    def hf_release(
        context: AssetExecutionContext, storage: StorageResource, hub: HubResource
    ) -> MaterializeResult:
        """The Hugging Face dataset release: Fondant-compatible layout plus a dataset card.

        Reads: ``<ds>/index/``, ``<ds>/id_mapping/``, the indexed partitions' embeddings,
        images (counts, and the download settings each file records) and metadata (source
        lineage). Writes: ``<ds>/release/`` (``data/``, ``faiss``, ``index_infos.json``,
        ``id_mapping/``, ``metadata/``, ``README.md``, ``report.png``), exactly what is uploaded;
        metadata ``report``, the card's report picture rendered in the UI (success rate and
        throughput per partition, under the images checks' default success floor in red, the
        failure reasons, the index's recall/latency curve). Guarantees: uploads to the
        Hub only when a release repo and a token are configured; otherwise records that it
        wrote the folder only. The token is never logged.
        """
        shard_list = read_shard_list(storage.read_bytes(paths.shard_list(ds)))
        keys = [entry.name for entry in shard_list]
        images_files = [paths.images(ds, key) for key in keys]
        source_files, source_revisions = source_lineage(
            [paths.metadata(ds, key) for key in keys], storage.read_table
        )
        counts = download_counts(images_files, storage.read_table)
        # The file's key-value metadata: the counts and download time are there, not in the
        # arrow schema's.
        footers = {path: storage.read_parquet_metadata(path).metadata for path in images_files}
        counts["resize"] = image_settings(recorded_settings(footers[path]) for path in images_files)
        partitions = released_partitions(
            dict(zip(keys, images_files, strict=True)), footers.get, storage.read_table
        )
        release_prefix = paths.release_dir(ds)
        version = code_version()
        with (
            storage.local_dir(paths.index_dir(ds)) as index_dir,
            storage.local_dir(paths.embeddings_dir(ds)) as embeddings_dir,
            storage.local_dir(paths.id_mapping_dir(ds)) as mapping_dir,
            storage.scratch("release") as work,
        ):
            inputs = ReleaseInputs(
                dataset=ds,
                source_repo=spec.hub_repo or spec.source,
                source_revision=",".join(source_revisions) or None,
                source_files=source_files,
                index_dir=index_dir,
                embeddings=[embeddings_dir / f"{key}.parquet" for key in keys],
                id_mapping=sorted(mapping_dir.glob("*.parquet")),
                model=json.loads((index_dir / paths.MODEL_NAME).read_text()),
                download=counts,
                code_version=version,
                license=hub.license,
                repo_id=hub.release_repo,
                partitions=partitions,
                success_floor=HealthThresholds.min_success_rate,
            )
            out = work / "release"
            summary = write_release_folder(inputs, out)
            published = None
            if hub.can_publish:
                published = upload_release(
                    out,
                    hub.release_repo,
                    hub.token,
                    endpoint=hub.endpoint,
                    private=hub.private,
                    commit_message=f"clip-assets {version}: {ds}",
                )
                context.log.info(f"published {hub.release_repo} at {published.get('commit_oid')}")
            else:
                context.log.info("no release repo or token configured: folder written only")
            report = report_metadata(
                ds,
                partitions,
                json.loads((out / "index_infos.json").read_text()),
                (out / REPORT_PNG).read_bytes(),
            )
            storage.replace_folder(out, release_prefix, last=("README.md",))
        return MaterializeResult(
            metadata={
                "report": report,
                "files": len(summary["files"]),
                "dagster/row_count": summary["rows"],
                "bytes": summary.get("bytes"),
                "success_rate": counts["success_rate"],
                "published": bool(published),
                "repo": (published or {}).get("url") or "",
                "path": MetadataValue.path(storage.uri(release_prefix)),
            }
        )

    return hf_release
