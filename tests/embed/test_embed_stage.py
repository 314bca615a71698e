"""embed_images: only ok rows with an image are embedded, in order, in the stored schema; a file
streamed a batch at a time gives the same."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clip_assets.download.summary import Counts
from clip_assets.embed import embed_images
from clip_assets.embed.embed_table import embed_image_file
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


def test_a_file_is_embedded_a_batch_at_a_time_with_the_same_result(mixed, tiny_encoder, tmp_path):
    path = tmp_path / "images.parquet"
    pq.write_table(mixed, path, row_group_size=2)
    seen: list[tuple[int, int]] = []
    counts = Counts()
    streamed = embed_image_file(
        path, tiny_encoder, batch_rows=3, counts=counts, on_progress=lambda *p: seen.append(p)
    )
    whole = embed_images(mixed, tiny_encoder)
    assert streamed["uid"].to_pylist() == whole["uid"].to_pylist() == ["u0", "u2", "u7"]
    np.testing.assert_allclose(
        np.array(streamed["embedding"].to_pylist()),
        np.array(whole["embedding"].to_pylist()),
        atol=1e-6,  # other batch shapes: float sums in another order
    )
    # Progress counts across batches up to every ok row; the counts saw every row.
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1][0] == 3 and {total for _, total in seen} == {4}  # 4 rows say ok
    assert counts.attempted == mixed.num_rows


def test_a_file_is_streamed_without_holding_what_it_has_read(jpegs, tiny_encoder, tmp_path):
    # pyarrow's default read cache kept every row group a stream had read until the file was
    # closed: a 50,000-row partition's embeddings step ended up holding all its image bytes.
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str, bytes | None]] = []
    for group in range(40):
        rows.append((f"ok{group}", "ok", jpegs[group % 3]))
        rows += [(f"f{group}-{i}", "failed", rng.bytes(50_000)) for i in range(15)]
    path = tmp_path / "images.parquet"
    pq.write_table(
        images_table(rows), path, row_group_size=16, compression="none", use_dictionary=False
    )
    baseline = pa.total_allocated_bytes()
    held: list[int] = []
    streamed = embed_image_file(
        path,
        tiny_encoder,
        batch_rows=16,
        on_progress=lambda *_: held.append(pa.total_allocated_bytes() - baseline),
    )
    assert streamed.num_rows == 40 and len(held) == 40
    # A batch is 0.8 MB of bytes; the file is 30 MB. The cache held ~all of it by the end.
    assert max(held) < path.stat().st_size / 6, (max(held), path.stat().st_size)
