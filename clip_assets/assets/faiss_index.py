"""``<ds>/faiss_index``: one index over every materialised embeddings partition."""

import json

from dagster import (
    AssetExecutionContext,
    AssetPartitionStatus,
    AssetsDefinition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from clip_assets import paths
from clip_assets.embed.checkpoint import sha256_file
from clip_assets.embed.identity import ModelMismatchError, shared_identity
from clip_assets.graph.automation import rebuild_condition
from clip_assets.graph.dataset_graph import DatasetGraph
from clip_assets.graph.materialization import index_metadata
from clip_assets.graph.settings_config import config_class, settings_from_config
from clip_assets.index.build import build_index
from clip_assets.index.coverage import TooManyFailedPartitions, index_coverage
from clip_assets.index.index_settings import IndexSettings
from clip_assets.index.infos import write_infos
from clip_assets.index.shards import EmbeddingShard
from clip_assets.index.text_queries import sample_captions
from resources.clip_model import ClipModelResource
from resources.storage import StorageResource

FaissIndexConfig = config_class(
    "FaissIndexConfig",
    IndexSettings,
    "How the index is chosen, built, tuned and measured (clip_assets.index.index_settings).",
    text_queries=(int, Field(default=256, description="Captions embedded to measure recall.")),
    rebuild=(bool, Field(default=False, description="Never add incrementally; train anew.")),
)


def build_faiss_index_asset(graph: DatasetGraph) -> AssetsDefinition:
    ds = graph.name

    @asset(
        **graph.whole_stage("faiss_index", ["embeddings"]),
        kinds={"faiss"},
        automation_condition=rebuild_condition(graph, "faiss_index"),
    )
    def faiss_index(
        context: AssetExecutionContext,
        config: FaissIndexConfig,  # type: ignore[valid-type]
        storage: StorageResource,
        clip_model: ClipModelResource,
    ) -> MaterializeResult:
        """A faiss index of every materialised embeddings partition, tuned and measured.

        Reads: ``<ds>/embeddings/*.parquet`` of the current partitions, in partition order,
        and the previous index when one exists. Writes: ``<ds>/index/`` — ``faiss``,
        ``index_infos.json`` (autofaiss fields, recall@1/@10, latency, search params, and under
        ``partitions`` the ones left out), ``shards.json`` (partition order and row counts: the
        id assignment) and ``model.json``. Guarantees: faiss id = position in partition order,
        then row order; one model made every indexed vector; partitions without embeddings
        are left out and named, and the build stops when more of them failed for good than
        the dataset's ``tolerated_failed_share``.

        Figures in each materialization: ``recall@10_image`` is the share of the exact 10
        nearest neighbours (a flat search over every indexed vector) that the index returns
        for held-out image embeddings, averaged over queries; ``recall@10_text`` is the same
        for caption embeddings, the text-to-image search users run; ``latency_p50_ms`` and
        ``latency_p99_ms`` time one query at a time, as a service answers them; ``index_bytes``
        is the index file; ``build_s`` the whole build, training and tuning included.
        """
        partitions = list(context.instance.get_dynamic_partitions(graph.partitions.name))
        statuses = context.instance.get_status_by_partition(
            graph.key("embeddings"), partitions, graph.partitions
        )
        failed = [k for k, s in (statuses or {}).items() if s == AssetPartitionStatus.FAILED]
        try:
            coverage = index_coverage(
                partitions,
                [paths.key_of(p) for p in storage.list(paths.embeddings_dir(ds))],
                failed,
                graph.spec.tolerated_failed_share,
            )
        except TooManyFailedPartitions as error:
            raise Failure(
                description=str(error),
                metadata={"failed_partitions": MetadataValue.json(error.failed)},
            ) from error
        keys = coverage.indexed
        if not keys:
            raise Failure(description=f"no embeddings partition of {ds} is materialised")
        if not any(storage.read_parquet_metadata(paths.embeddings(ds, k)).num_rows for k in keys):
            raise Failure(
                description=f"the {len(keys)} embeddings partitions of {ds} hold no vectors: "
                "no image was downloaded (see the images partitions' failure_reasons)"
            )
        settings = settings_from_config(IndexSettings, config)
        with (
            storage.local_dir(paths.embeddings_dir(ds)) as embeddings_dir,
            storage.scratch("index") as work,
        ):
            shards = [EmbeddingShard(key, embeddings_dir / f"{key}.parquet") for key in keys]
            try:
                model = shared_identity((shard.name, shard.path) for shard in shards)
            except ModelMismatchError as error:
                raise Failure(
                    description=str(error),
                    metadata={"identities": MetadataValue.json(error.identities)},
                ) from error
            captions = sample_captions(
                keys,
                lambda key: (
                    storage.read_table(paths.metadata(ds, key), ["text"]).column("text").to_pylist()
                ),
                config.text_queries,
            )
            text_queries = (
                clip_model.get_encoder(device="cpu").encode_texts(captions) if captions else None
            )
            previous = None
            if not config.rebuild and storage.exists(paths.index_file(ds, paths.INDEX_NAME)):
                previous = work / "previous"
                previous.mkdir()
                for name in paths.INDEX_FILES:
                    if storage.exists(paths.index_file(ds, name)):
                        storage.download_file(paths.index_file(ds, name), previous / name)
            out = work / "index"
            infos = build_index(
                shards,
                out,
                settings,
                text_queries=text_queries,
                previous=previous,
                progress=lambda report: context.log.info(str(report)),
            )
            # Which partitions this index leaves out travels with it (the card reads it).
            infos = {**infos, "partitions": coverage.to_json()}
            write_infos(infos, out)
            (out / paths.MODEL_NAME).write_text(json.dumps(model, indent=1, sort_keys=True))
            # The index's bytes are its data version: a rebuild that changes them marks what
            # was made from the old index (retrievals) stale; one that does not, does not.
            version = DataVersion(sha256_file(out / paths.INDEX_NAME)[:16])
            # One unit: a reader never sees an index beside another build's shard list.
            storage.replace_folder(out, paths.index_dir(ds), last=(paths.INFOS_NAME,))
        uri = storage.uri(paths.index_dir(ds))
        return MaterializeResult(
            metadata=index_metadata(infos, len(keys), model, uri), data_version=version
        )

    return faiss_index
