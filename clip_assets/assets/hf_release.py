"""``<ds>/hf_release``: the release folder, staged in storage and published when configured."""

import json
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, MetadataValue, asset

from clip_assets import __version__, paths
from clip_assets.assets.dataset import DatasetGraph
from clip_assets.assets.faiss_index import REBUILD_ON_NEW_INPUTS, indexed_shards
from clip_assets.release.release_folder import ReleaseInputs, write_release_folder
from clip_assets.release.upload import upload_release
from resources.downloader import DownloaderResource
from resources.hub import HubResource
from resources.storage import StorageResource


def code_version() -> str:
    """Package version plus the git commit of the checkout, when there is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return __version__
    return f"{__version__}+g{commit}"


def download_counts(storage: StorageResource, ds: str, keys: list[str]) -> dict:
    """Status and reason counts over the images of the released partitions."""
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for key in keys:
        table = storage.read_table(paths.images(ds, key), columns=["status", "reason"])
        statuses.update(table.column("status").to_pylist())
        reasons.update(r for r in table.column("reason").to_pylist() if r)
    attempted = sum(statuses.values())
    return {
        "attempted": attempted,
        "ok": statuses.get("ok", 0),
        "success_rate": round(statuses.get("ok", 0) / attempted, 4) if attempted else 0.0,
        "by_status": dict(sorted(statuses.items())),
        "top_reasons": dict(reasons.most_common(10)),
    }


def source_lineage(storage: StorageResource, ds: str, keys: list[str]) -> tuple[list, list]:
    """The source files and revisions the released partitions were read from."""
    files: set[str] = set()
    revisions: set[str] = set()
    for key in keys:
        table = storage.read_table(paths.metadata(ds, key), ["source_file", "source_revision"])
        files.update(pc.unique(table.column("source_file")).to_pylist())
        revisions.update(r for r in pc.unique(table.column("source_revision")).to_pylist() if r)
    return sorted(files), sorted(revisions)


def build_hf_release_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec

    @asset(
        **graph.whole_stage("hf_release", ["faiss_index", "id_mapping"]),
        kinds={"huggingface"},
        automation_condition=REBUILD_ON_NEW_INPUTS,
    )
    def hf_release(
        context: AssetExecutionContext,
        storage: StorageResource,
        hub: HubResource,
        downloader: DownloaderResource,
    ) -> MaterializeResult:
        """The Hugging Face dataset release: Fondant-compatible layout plus a dataset card.

        Reads: ``<ds>/index/``, ``<ds>/id_mapping/``, the indexed partitions' embeddings and
        images (for counts). Writes: ``<ds>/release/`` (``data/``, ``faiss``,
        ``index_infos.json``, ``id_mapping/``, ``README.md``), exactly what is uploaded.
        Guarantees: uploads to the Hub only when a release repo and a token are configured;
        otherwise records that it staged only. The token is never logged.
        """
        index_prefix = paths.index_dir(spec.name)
        keys = [entry.name for entry in indexed_shards(storage, spec.name)]
        source_files, source_revisions = source_lineage(storage, spec.name, keys)
        resize = downloader.settings_for(spec.allowed_hosts)
        counts = download_counts(storage, spec.name, keys)
        counts["resize"] = {
            "image_size": resize.image_size,
            "resize_mode": resize.resize_mode,
            "encode_format": resize.encode_format,
            "encode_quality": resize.encode_quality,
        }
        release_prefix = paths.release_dir(spec.name)
        version = code_version()
        with (
            storage.local_dir(index_prefix) as index_dir,
            storage.local_dir(f"{spec.name}/embeddings") as embeddings_dir,
            storage.local_dir(paths.id_mapping_dir(spec.name)) as mapping_dir,
            tempfile.TemporaryDirectory(prefix="clip-assets-release-") as work,
        ):
            inputs = ReleaseInputs(
                dataset=spec.name,
                source_repo=spec.hub_repo or spec.source,
                source_revision=",".join(source_revisions) or None,
                source_files=source_files,
                index_dir=index_dir,
                embeddings=[embeddings_dir / f"{key}.parquet" for key in keys],
                id_mapping=sorted(mapping_dir.glob("*.parquet")),
                model=json.loads((index_dir / "model.json").read_text()),
                download=counts,
                code_version=version,
                license=hub.license,
                repo_id=hub.release_repo,
            )
            out = Path(work) / "release"
            summary = write_release_folder(inputs, out)
            staged = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
            for rel in staged:
                storage.upload_file(out / rel, f"{release_prefix}/{rel}")
            wanted = {f"{release_prefix}/{rel}" for rel in staged}
            for stale in set(storage.list(release_prefix)) - wanted:
                storage.delete(stale)
            published = None
            if hub.can_publish:
                published = upload_release(
                    out,
                    hub.release_repo,
                    hub.token,
                    endpoint=hub.endpoint,
                    private=hub.private,
                    commit_message=f"clip-assets {version}: {spec.name}",
                )
                context.log.info(f"published {hub.release_repo} at {published.get('commit_oid')}")
            else:
                context.log.info("no release repo or token configured: staged only")
        return MaterializeResult(
            metadata={
                "files": MetadataValue.json(staged),
                "rows": summary.get("rows"),
                "success_rate": counts["success_rate"],
                "published": bool(published),
                "repo": (published or {}).get("url") or "",
                "path": MetadataValue.path(storage.uri(release_prefix)),
            }
        )

    return hf_release
