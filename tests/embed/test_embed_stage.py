"""embed_images: only ok rows with an image are embedded, in order, in the stored schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from clip_assets.embed import embed_images
from clip_assets.schemas import IMAGES_SCHEMA, embeddings_schema


def images_table(rows: list[tuple[str, str, bytes | None]]) -> pa.Table:
    """An IMAGES_SCHEMA table from (uid, status, image) rows; other columns left null."""
    columns = {name: [None] * len(rows) for name in IMAGES_SCHEMA.names}
    columns["uid"] = [uid for uid, _, _ in rows]
    columns["url"] = [f"http://127.0.0.1/{uid}.jpg" for uid, _, _ in rows]
    columns["status"] = [status for _, status, _ in rows]
    columns["image"] = [image for _, _, image in rows]
    return pa.Table.from_pydict(columns, schema=IMAGES_SCHEMA)


@pytest.fixture(scope="module")
def mixed(jpegs) -> pa.Table:
    # Non-ok rows carry real image bytes on purpose: status alone must exclude them. Two
    # concatenated tables give chunked columns, as a parquet file with row groups does.
    rows = [
        ("u0", "ok", jpegs[0]),
        ("u1", "failed", jpegs[1]),
        ("u2", "ok", jpegs[2]),
        ("u3", "opted_out", jpegs[3]),
        ("u4", "hash_mismatch", jpegs[4]),
        ("u5", "skipped", jpegs[5]),
        ("u6", "ok", None),
        ("u7", "ok", jpegs[6]),
    ]
    return pa.concat_tables([images_table(rows[:3]), images_table(rows[3:])])


def test_only_ok_rows_with_images_are_embedded_in_order(mixed, tiny_encoder, jpegs):
    out = embed_images(mixed, tiny_encoder)
    assert out.schema == embeddings_schema(512)
    assert out["uid"].to_pylist() == ["u0", "u2", "u7"]
    assert out["url"].to_pylist() == [f"http://127.0.0.1/{u}.jpg" for u in ("u0", "u2", "u7")]
    vectors = np.array(out["embedding"].to_pylist(), dtype=np.float32)
    expected = tiny_encoder.encode_images([jpegs[0], jpegs[2], jpegs[6]])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_float16_output(mixed, tiny_encoder):
    full = np.array(embed_images(mixed, tiny_encoder)["embedding"].to_pylist())
    half = embed_images(mixed, tiny_encoder, dtype="float16")
    assert half.schema == embeddings_schema(512, pa.float16())
    vectors = np.array(half["embedding"].to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, full, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_partition_without_ok_rows_gives_empty_table(jpegs, tiny_encoder):
    out = embed_images(images_table([("u0", "failed", jpegs[0])]), tiny_encoder)
    assert out.num_rows == 0 and out.schema == embeddings_schema(512)


def test_ok_row_that_does_not_decode_is_reported_by_uid(jpegs, tiny_encoder):
    table = images_table([("good", "ok", jpegs[0]), ("broken", "ok", b"\xff\xd8\xffnot a jpeg")])
    with pytest.raises(ValueError, match="uid=broken"):
        embed_images(table, tiny_encoder)


def test_unknown_dtype_is_rejected(mixed, tiny_encoder):
    with pytest.raises(ValueError, match="dtype"):
        embed_images(mixed, tiny_encoder, dtype="int8")
