"""Arrow schemas of every table the pipeline stores (docs/architecture.md, "Storage layout").

Each stage module builds its output against these schemas, so the files under
``<root>/<ds>/<stage>/`` have one shape whoever wrote them.
"""

from __future__ import annotations

import pyarrow as pa

#: Normalised rows of one source slice: ``<root>/<ds>/metadata/<partition>.parquet``.
METADATA_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("text", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("original_width", pa.int64()),
        pa.field("original_height", pa.int64()),
        pa.field("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_revision", pa.string()),
        pa.field("source_row", pa.int64(), nullable=False),
    ]
)

#: Values of the ``status`` column of the images table.
STATUSES = ("ok", "failed", "opted_out", "hash_mismatch", "skipped")

#: One row per metadata row, same order: ``<root>/<ds>/images/<partition>.parquet``.
#: ``width``/``height`` describe the stored (resized) image, ``original_*`` the decoded one.
IMAGES_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("attempts", pa.int32()),
        pa.field("sha256", pa.string()),
        pa.field("sha256_ok", pa.bool_()),
        pa.field("bytes", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("original_width", pa.int32()),
        pa.field("original_height", pa.int32()),
        pa.field("image", pa.binary()),
    ]
)


def embeddings_schema(dim: int, dtype: pa.DataType | None = None) -> pa.Schema:
    """Schema of ``<root>/<ds>/embeddings/<partition>.parquet``: one row per embedded image.

    ``dtype`` is float32 (the default) or float16.
    """
    dtype = dtype or pa.float32()
    return pa.schema(
        [
            pa.field("uid", pa.string(), nullable=False),
            pa.field("url", pa.string()),
            pa.field("embedding", pa.list_(pa.field("item", dtype, nullable=False), dim)),
        ]
    )


#: ``<root>/<ds>/id_mapping/<n>.parquet``: faiss id ``i`` -> the row it stands for.
ID_MAPPING_SCHEMA = pa.schema(
    [
        pa.field("i", pa.int64(), nullable=False),
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("text", pa.string()),
    ]
)


#: One row per kept hit of a retrieval run, grouped by query in query-set order, ``rank`` 1 the
#: most similar: ``query_id`` and ``query`` (the prompt, image URL or file; null for an
#: embedding) come from the query set, ``id`` is the faiss id and ``uid``, ``url``, ``caption``
#: its id-mapping row (null where the index's layout has no such column).
RETRIEVAL_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("query", pa.string()),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("uid", pa.string()),
        pa.field("url", pa.string()),
        pa.field("caption", pa.string()),
        pa.field("similarity", pa.float32(), nullable=False),
    ]
)

#: A retrieval table with its images downloaded: every RETRIEVAL_SCHEMA row, in order, with
#: the images stage's columns for that row's url (``status`` and ``reason`` as in IMAGES_SCHEMA).
RETRIEVED_IMAGES_SCHEMA = pa.schema(
    list(RETRIEVAL_SCHEMA) + [f for f in IMAGES_SCHEMA if f.name not in ("uid", "url")]
)

#: The shape Fondant's ``retrieve_from_faiss_by_prompt`` / ``_by_embedding`` components write:
#: ``id`` (their dataframe index, unique per row), ``prompt_id`` (the query it answers),
#: ``prompt`` (null for embedding queries) and ``image_url``, what ``download_images`` reads.
FONDANT_RETRIEVAL_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("image_url", pa.string()),
    ]
)
