"""Runs one of our stages the way its asset does, for the peer benchmarks (our venv only).

``python _run_ours.py download URLS.parquet OUT.parquet SETTINGS_JSON``
    builds the metadata table from a DataComp-like URL list and calls
    ``download_shard_to_file`` to write the images table to OUT, as the images asset does.
``python _run_ours.py embed IMAGES.parquet OUT.parquet SPEC_JSON``
    loads the encoder once, calls ``embed_images`` on the images table and writes OUT.

Prints one JSON line: ``load_s`` (model load, embed only), ``stage_s`` (the stage call
alone; for download it includes writing the file, which happens as rows finish), ``rows`` and
``ok`` (rows with status ok / embeddings written), for download the rest of the images summary
(reasons, DNS figures, ...), and for embed the ``precision`` and ``device`` the encoder
resolved.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def metadata_from_url_list(path: Path) -> pa.Table:
    """The URL list as METADATA_SCHEMA rows, as the metadata asset would store it."""
    from clip_assets.schemas import METADATA_SCHEMA

    urls = pq.read_table(path)
    n = urls.num_rows
    columns = {
        name: urls.column(name) if name in urls.column_names else pa.nulls(n, field.type)
        for name, field in zip(METADATA_SCHEMA.names, METADATA_SCHEMA, strict=True)
    }
    columns["source_file"] = pa.array([path.name] * n, pa.string())
    columns["source_row"] = pa.array(range(n), pa.int64())
    return pa.table(columns, schema=METADATA_SCHEMA)


def download(urls: Path, out: Path, settings_json: str) -> dict[str, object]:
    from clip_assets.download.download_settings import DownloadSettings
    from clip_assets.download.shard_download import download_shard_to_file
    from clip_assets.download.summary import summarize_file

    values = json.loads(settings_json)
    for name in ("allowed_hosts", "dns_servers"):
        if name in values:
            values[name] = tuple(values[name])
    settings = DownloadSettings(**values)
    metadata = metadata_from_url_list(urls)
    start = time.perf_counter()
    network = download_shard_to_file(metadata, settings, out)
    stage_s = time.perf_counter() - start
    summary = summarize_file(out, stage_s, network)
    return {"stage_s": stage_s, "rows": summary["attempted"], **summary}


def embed(images_path: Path, out: Path, spec_json: str) -> dict[str, object]:
    from clip_assets.embed.embed_table import embed_images
    from clip_assets.embed.encoder import ClipEncoder
    from clip_assets.embed.model_loading import ModelSpec

    start = time.perf_counter()
    encoder = ClipEncoder.load(ModelSpec(**json.loads(spec_json)))
    load_s = time.perf_counter() - start
    images = pq.read_table(images_path)
    start = time.perf_counter()
    embeddings = embed_images(images, encoder)
    stage_s = time.perf_counter() - start
    pq.write_table(embeddings, out)
    return {
        "load_s": load_s,
        "stage_s": stage_s,
        "rows": images.num_rows,
        "ok": embeddings.num_rows,
        "precision": encoder.identity.get("precision"),
        "device": encoder.identity.get("device"),
    }


if __name__ == "__main__":
    verb, src, dst, config = sys.argv[1:5]
    run = {"download": download, "embed": embed}[verb]
    print(json.dumps(run(Path(src), Path(dst), config)), flush=True)
