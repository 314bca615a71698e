"""Small real release inputs: stored embeddings partitions, an id mapping and a faiss index."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.release.inputs import ReleaseInputs
from clip_assets.schemas import ID_MAPPING_SCHEMA, embeddings_schema

DIM = 32
#: Rows per stored embeddings partition; the last partition is float16, as the stage may store.
PARTITIONS = [(7, pa.float32()), (5, pa.float32()), (9, pa.float16())]
ROWS = sum(n for n, _ in PARTITIONS)
TOKEN = "hf_release_test_token_0123456789"


def unit_vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_embeddings(path: Path, vectors: np.ndarray, uids: list[str], dtype: pa.DataType) -> None:
    schema = embeddings_schema(DIM, dtype)
    values = pa.array(vectors.astype(dtype.to_pandas_dtype()).reshape(-1), type=dtype)
    embedding = pa.FixedSizeListArray.from_arrays(values, type=schema.field("embedding").type)
    urls = [f"https://img.example/{u}.jpg" for u in uids]
    table = pa.table({"uid": uids, "url": urls, "embedding": embedding}, schema=schema)
    pq.write_table(table, path)


def make_inputs(root: Path, **overrides: object) -> ReleaseInputs:
    """Three embeddings partitions, a two-file id mapping and a flat IP index over them."""
    (root / "embeddings").mkdir(parents=True)
    (root / "id_mapping").mkdir()
    (root / "index").mkdir()
    embeddings, stored, uids = [], [], []
    for p, (n, dtype) in enumerate(PARTITIONS):
        part_uids = [f"{len(uids) + r:032x}" for r in range(n)]
        vectors = unit_vectors(n, seed=p)
        path = root / "embeddings" / f"shard-{p:04d}.parquet"
        write_embeddings(path, vectors, part_uids, dtype)
        embeddings.append(path)
        stored.append(vectors.astype(dtype.to_pandas_dtype()).astype(np.float32))
        uids += part_uids
    index = faiss.IndexFlatIP(DIM)
    index.add(np.concatenate(stored))
    faiss.write_index(index, str(root / "index" / "faiss"))
    infos = {"index_key": "Flat", "nb vectors": ROWS, "recall@1": 1.0, "recall@10": 1.0}
    infos["latency_ms"] = {"avg": 0.05, "p99": 0.2, "p50": 0.04, "queries": 100}
    (root / "index" / "index_infos.json").write_text(json.dumps(infos))
    mapping = []
    for f, (start, stop) in enumerate([(0, 10), (10, ROWS)]):
        rows = {
            "i": list(range(start, stop)),
            "uid": uids[start:stop],
            "url": [f"https://img.example/{u}.jpg" for u in uids[start:stop]],
            "text": [f"caption {i}" for i in range(start, stop)],
        }
        path = root / "id_mapping" / f"{f}.parquet"
        pq.write_table(pa.table(rows, schema=ID_MAPPING_SCHEMA), path)
        mapping.append(path)
    fields = {
        "dataset": "tiny_sample",
        "source_repo": "mlfoundations/datacomp_small",
        "source_revision": "0123abcd",
        "source_files": ["aa.parquet", "bb.parquet"],
        "index_dir": root / "index",
        "embeddings": embeddings,
        "id_mapping": mapping,
        "model": {
            "model": "ViT-B-32",  # the shape of ClipEncoder.identity
            "pretrained": "laion2b_s34b_b79k",
            "weights_sha256": "f" * 64,
            "precision": "fp32",
            "device": "cpu",
            "preprocessing": {"resize": 224, "crop": "center", "normalize": "openai"},
            "open_clip_version": "3.2.0",
        },
        "download": {
            "attempted": 30,
            "ok": ROWS,
            "by_status": {"ok": ROWS, "failed": 9},
            "top_reasons": {"http_404": 6, "timeout": 3},
            "resize": {"mode": "shortest_side", "size": 256},
        },
        "code_version": "0.1.0+abc1234",
        "repo_id": "org/tiny-sample-clip",
    }
    fields.update(overrides)
    return ReleaseInputs(**fields)
