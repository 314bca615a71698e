"""The retrieval file as Fondant's retrieval components write theirs, for Fondant pipelines.

Fondant's ``retrieve_from_faiss_by_prompt`` and ``retrieve_from_faiss_by_embedding`` produce a
dataset indexed by a unique string ``id`` with an ``image_url`` per hit (plus the ``prompt``
for the prompt component), which its ``download_images`` component consumes.
``write_fondant`` reads a RETRIEVAL_SCHEMA file a row group at a time and writes
FONDANT_RETRIEVAL_SCHEMA rows, in the same order: ``id`` = ``<query_id>_<rank>``,
``prompt_id`` = the query id, ``prompt`` = the prompt (null unless the queries were text),
``image_url`` = the hit's url. Load it with Fondant's ``load_from_parquet``
(``index_column="id"``) or read it where a retrieval component's output is expected. The file
appears only when complete.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.retrieve.retrieval import read_description
from clip_assets.retrieve.table_file import table_file
from clip_assets.schemas import FONDANT_RETRIEVAL_SCHEMA
from clip_assets.streamed_parquet import open_streamed


def fondant_table(hits: pa.Table, *, text_queries: bool) -> pa.Table:
    """FONDANT_RETRIEVAL_SCHEMA rows for a RETRIEVAL_SCHEMA table, in the same order."""
    row_id = pc.binary_join_element_wise(hits["query_id"], pc.cast(hits["rank"], pa.string()), "_")
    prompt = hits["query"] if text_queries else pa.nulls(hits.num_rows, pa.string())
    return pa.table(
        {"id": row_id, "prompt_id": hits["query_id"], "prompt": prompt, "image_url": hits["url"]},
        schema=FONDANT_RETRIEVAL_SCHEMA,
    )


def write_fondant(hits_path: str | Path, path: str | Path) -> int:
    """Writes the Fondant view of the retrieval file ``hits_path`` to ``path``; returns rows."""
    text_queries = read_description(hits_path)["query_set"]["kind"] == "text"
    rows = 0
    with (
        open_streamed(hits_path) as source,
        table_file(path, FONDANT_RETRIEVAL_SCHEMA) as write,
    ):
        for batch in source.iter_batches(columns=["query_id", "query", "rank", "url"]):
            table = fondant_table(pa.Table.from_batches([batch]), text_queries=text_queries)
            write(table)
            rows += table.num_rows
    return rows
