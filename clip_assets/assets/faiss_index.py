"""``<ds>/faiss_index``: one index over every materialised embeddings partition."""

import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.assets.dataset import DatasetGraph
from clip_assets.assets.embeddings import MODEL_IDENTITY_KEY
from clip_assets.index.build import build_index
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.shards import EmbeddingShard, ShardEntry, read_shard_list
from resources.clip_model import ClipModelResource
from resources.storage import StorageResource

#: Rebuild once upstream partitions changed and nothing upstream is still running; unlike
#: ``eager()`` it does not wait for every partition to exist, since partitions keep arriving.
REBUILD_ON_NEW_INPUTS = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())

#: Files of the index folder, in upload order: ``index_infos.json`` last, so a reader that
#: sees the new infos also sees the index they describe.
INDEX_FILES = ("faiss", "shards.json", "model.json", "index_infos.json")


class FaissIndexConfig(Config):
    """autofaiss knobs and our tuning targets (see clip_assets.index.index_settings)."""

    max_index_memory_usage: str = Field(default="16G", description="Index size budget.")
    current_memory_available: str = Field(default="32G", description="RAM for the build.")
    index_key: str | None = Field(default=None, description="Force a faiss index factory key.")
    nb_cores: int | None = Field(default=None, description="Build threads; None = all.")
    should_be_memory_mappable: bool = False
    recall_target: float = Field(default=0.95, description="recall@10 the search params reach.")
    text_queries: int = Field(default=256, description="Captions embedded to measure recall.")
    rebuild: bool = Field(default=False, description="Never add incrementally; train anew.")
    incremental_add_max_share: float = Field(
        default=0.2, description="New vectors a trained IVF index takes without retraining."
    )
    hnsw_ef_construction: int | None = Field(
        default=128, description="HNSW build effort; None = faiss's 40 (autofaiss's choice)."
    )


def materialized_shards(storage: StorageResource, ds: str, keys: list[str]) -> list[str]:
    """Partition keys, in partition order, whose embeddings file exists."""
    stored = {paths.key_of(p) for p in storage.list(f"{ds}/embeddings")}
    return [key for key in sorted(keys) if key in stored]


def indexed_shards(storage: StorageResource, ds: str) -> list[ShardEntry]:
    """The partitions the current index holds, in faiss id order (from ``shards.json``)."""
    payload = json.loads(storage.read_bytes(f"{paths.index_dir(ds)}/shards.json"))
    return read_shard_list(payload["shards"])


def portable(identity: dict) -> dict:
    """The model identity without what belongs to one machine (the local weights path, the
    device): the same weights (by sha256) embedded on two machines are the same model."""
    return {k: v for k, v in identity.items() if k not in ("weights_file", "device")}


def shared_model_identity(shards: list[EmbeddingShard]) -> dict:
    """The model identity all shards were embedded with; mixing models is refused."""
    identities = {}
    for shard in shards:
        schema_metadata = pq.read_schema(shard.path).metadata or {}
        identities[shard.name] = schema_metadata.get(MODEL_IDENTITY_KEY, b"{}").decode()
    distinct = {json.dumps(portable(json.loads(i)), sort_keys=True) for i in identities.values()}
    if len(distinct) > 1:
        raise Failure(
            description="embeddings partitions were made by different models; re-embed them "
            "with one model before indexing",
            metadata={"identities": MetadataValue.json(identities)},
        )
    return portable(json.loads(next(iter(identities.values()))))


def build_faiss_index_asset(graph: DatasetGraph) -> AssetsDefinition:
    spec = graph.spec

    @asset(
        **graph.whole_stage("faiss_index", ["embeddings"]),
        kinds={"faiss"},
        automation_condition=REBUILD_ON_NEW_INPUTS,
    )
    def faiss_index(
        context: AssetExecutionContext,
        config: FaissIndexConfig,
        storage: StorageResource,
        clip_model: ClipModelResource,
    ) -> MaterializeResult:
        """A faiss index of every materialised embeddings partition, tuned and measured.

        Reads: ``<ds>/embeddings/*.parquet`` of the current partitions, in partition order,
        and the previous index when one exists. Writes: ``<ds>/index/`` — ``faiss``,
        ``index_infos.json`` (autofaiss fields, recall@1/@10, latency, search params),
        ``shards.json`` (partition order and row counts: the id assignment) and ``model.json``.
        Guarantees: faiss id = position in partition order, then row order.
        """
        keys = materialized_shards(
            storage, spec.name, context.instance.get_dynamic_partitions(graph.partitions.name)
        )
        if not keys:
            raise Failure(description=f"no embeddings partition of {spec.name} is materialised")
        settings = IndexSettings(
            max_index_memory_usage=config.max_index_memory_usage,
            current_memory_available=config.current_memory_available,
            index_key=config.index_key,
            nb_cores=config.nb_cores,
            should_be_memory_mappable=config.should_be_memory_mappable,
            recall_target=config.recall_target,
            incremental_add_max_share=config.incremental_add_max_share,
            hnsw_ef_construction=config.hnsw_ef_construction,
        )
        index_prefix = paths.index_dir(spec.name)
        with (
            storage.local_dir(f"{spec.name}/embeddings") as embeddings_dir,
            tempfile.TemporaryDirectory(prefix="clip-assets-index-") as work,
        ):
            shards = [EmbeddingShard(key, embeddings_dir / f"{key}.parquet") for key in keys]
            model = shared_model_identity(shards)
            text_queries = None
            if config.text_queries > 0:
                captions = sample_captions(storage, spec.name, keys, config.text_queries)
                if captions:
                    text_queries = clip_model.get_encoder(device="cpu").encode_texts(captions)
            previous = None
            if not config.rebuild and storage.exists(f"{index_prefix}/faiss"):
                previous = Path(work) / "previous"
                for name in INDEX_FILES:
                    if storage.exists(f"{index_prefix}/{name}"):
                        previous.mkdir(exist_ok=True)
                        storage.download_file(f"{index_prefix}/{name}", previous / name)
            out = Path(work) / "index"
            infos = build_index(shards, out, settings, text_queries=text_queries, previous=previous)
            (out / "model.json").write_text(json.dumps(model, indent=1, sort_keys=True))
            for name in INDEX_FILES:
                storage.upload_file(out / name, f"{index_prefix}/{name}")
        recall = infos.get("recall", {})
        return MaterializeResult(
            metadata={
                "vectors": infos.get("nb vectors"),
                "partitions": len(keys),
                "index_key": infos.get("index_key"),
                "mode": infos.get("mode"),
                "recall": MetadataValue.json(recall),
                "search_params": MetadataValue.json(infos.get("search_params", {})),
                "model": MetadataValue.json(model),
                "path": MetadataValue.path(storage.uri(f"{index_prefix}/faiss")),
            }
        )

    return faiss_index


def sample_captions(storage: StorageResource, ds: str, keys: list[str], count: int) -> list[str]:
    """Up to ``count`` non-empty captions spread evenly over the partitions, deterministic."""
    per_partition = max(1, count // len(keys))
    captions: list[str] = []
    for key in keys:
        texts = storage.read_table(paths.metadata(ds, key), columns=["text"]).column("text")
        present = [t for t in texts.to_pylist() if t]
        step = max(1, len(present) // per_partition)
        captions.extend(present[::step][:per_partition])
    return captions[:count]
