"""The embeddings stage: an images table (or file, streamed) in, an embeddings table out.

Reads: a table with ``IMAGES_SCHEMA`` (one partition of ``<root>/<ds>/images``), or such a
parquet file a batch of rows at a time (:func:`embed_image_file`: a 50,000-row partition read
whole took 5.5 GB of memory before any decoding, three copies of its image bytes).
Writes: nothing; returns a table with ``embeddings_schema(encoder.dim, float32|float16)``.
Guarantees: exactly the rows with ``status == "ok"`` and a non-null image are embedded, in row
order; every embedding is L2-normalised (float16 rounds each component, so norms are 1 to
within about 1e-3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clip_assets.download.summary import Counts
from clip_assets.embed.decode import ImageDecodeError
from clip_assets.embed.encoder import ClipEncoder
from clip_assets.schemas import embeddings_schema
from clip_assets.streamed_parquet import open_streamed

DTYPES = {"float32": (np.float32, pa.float32()), "float16": (np.float16, pa.float16())}


def embed_images(
    images: pa.Table,
    encoder: ClipEncoder,
    *,
    dtype: str = "float32",
    on_progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """Embed the ``ok`` rows of ``images``; ``dtype`` is "float32" (default) or "float16";
    ``on_progress(done, total)`` follows the batches.

    Raises ``ValueError`` naming the row's uid when an ``ok`` row's image cannot be decoded:
    the images stage promises decodable bytes, so that is a bug to surface, not a row to drop.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    np_dtype, pa_dtype = DTYPES[dtype]
    ok = images.filter(pc.and_(pc.equal(images["status"], "ok"), pc.is_valid(images["image"])))
    try:
        report = None if on_progress is None else lambda done: on_progress(done, ok.num_rows)
        vectors = encoder.encode_images(_BytesColumn(ok["image"].combine_chunks()), report)
    except ImageDecodeError as err:
        uid = ok["uid"][err.index].as_py()
        raise ValueError(f"row uid={uid} has status ok but its image does not decode") from err
    flat = pa.array(vectors.astype(np_dtype).reshape(-1), type=pa_dtype)
    schema = embeddings_schema(encoder.dim, pa_dtype)
    embedding = pa.FixedSizeListArray.from_arrays(flat, type=schema.field("embedding").type)
    return pa.Table.from_arrays(
        [ok["uid"].combine_chunks(), ok["url"].combine_chunks(), embedding], schema=schema
    )


#: Rows of an images file read at a time (about 60 MB of 256 px JPEGs).
FILE_BATCH_ROWS = 4_096


def embed_image_file(
    path: Path,
    encoder: ClipEncoder,
    *,
    dtype: str = "float32",
    on_progress: Callable[[int, int], None] | None = None,
    counts: Counts | None = None,
    batch_rows: int = FILE_BATCH_ROWS,
) -> pa.Table:
    """:func:`embed_images` over an images parquet file, ``batch_rows`` rows at a time, so the
    partition's image bytes are never read, filtered and copied all at once; ``counts`` (when
    given) takes in every batch, for a file that lacks its stored summary."""
    with open_streamed(path) as parquet:
        status = parquet.read(columns=["status"])["status"]
        total = int(pc.sum(pc.equal(status, "ok")).as_py() or 0)
        done, parts = 0, []
        for batch in parquet.iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch])
            if counts is not None:
                counts.add(table)
            report = None
            if on_progress is not None:
                report = lambda n, _of, start=done: on_progress(start + n, total)  # noqa: E731
            parts.append(embed_images(table, encoder, dtype=dtype, on_progress=report))
            done += parts[-1].num_rows
        if not parts:
            return embed_images(parquet.schema_arrow.empty_table(), encoder, dtype=dtype)
    return pa.concat_tables(parts).combine_chunks()


class _BytesColumn(Sequence):
    """A binary Arrow array seen as a sequence of bytes, converted one slice at a time.

    The encoder reads it a batch at a time, so a 50,000-image partition is never copied into
    Python bytes objects all at once.
    """

    def __init__(self, array: pa.Array) -> None:
        self._array = array

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self._array))
            if step == 1:
                return self._array.slice(start, max(stop - start, 0)).to_pylist()
            return [self._array[i].as_py() for i in range(start, stop, step)]
        return self._array[index].as_py()
