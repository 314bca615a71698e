"""Staging the release folder from real stored files: layout, row order, card, idempotence."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, metadata_load
from release_samples import DIM, ROWS, make_inputs, unit_vectors, write_embeddings

from clip_assets.release.inputs import ReleaseInputs
from clip_assets.release.release_folder import write_release_folder
from clip_assets.release.tables import ReleaseError


def read_folder(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("*.parquet")))


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_layout_is_the_fondant_superset(inputs: ReleaseInputs, tmp_path: Path) -> None:
    out = tmp_path / "release"
    summary = write_release_folder(inputs, out, rows_per_file=6)

    chunks = [f"train-{k:05d}-of-00004.parquet" for k in range(4)]  # 21 rows, 6 per file
    expected = {"README.md", "faiss", "image.index", "index_infos.json", "model.json"}
    expected |= {f"{folder}/{c}" for folder in ("data", "id_mapping", "metadata") for c in chunks}
    assert set(summary["files"]) == expected == set(digests(out))
    assert summary["rows"] == ROWS and summary["dim"] == DIM
    assert summary["bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    data = pq.read_schema(out / "data" / chunks[0])
    assert data.names == ["id", "url", "embedding"]
    assert data.field("embedding").type == pa.list_(pa.float32())
    mapping = pq.read_schema(out / "id_mapping" / chunks[0])
    assert mapping.names == ["url", "i", "uid", "text"]
    assert mapping.field("i").type == pa.int64()
    assert pq.read_schema(out / "metadata" / chunks[0]).names == ["url", "caption"]
    assert (out / "index_infos.json").read_bytes() == (
        inputs.index_dir / "index_infos.json"
    ).read_bytes()
    assert json.loads((out / "model.json").read_text()) == inputs.model
    # clip back's image.index is the index itself, not a second copy on disk.
    assert (out / "image.index").stat().st_ino == (out / "faiss").stat().st_ino


def test_row_k_is_faiss_id_k_in_every_folder(inputs: ReleaseInputs, tmp_path: Path) -> None:
    out = tmp_path / "release"
    write_release_folder(inputs, out, rows_per_file=6)
    index = faiss.read_index(str(out / "faiss"))
    data = read_folder(out / "data")
    vectors = np.array(data.column("embedding").to_pylist(), dtype=np.float32)

    assert vectors.shape == (index.ntotal, DIM)
    np.testing.assert_array_equal(vectors, index.reconstruct_n(0, index.ntotal))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)
    mapping = read_folder(out / "id_mapping")
    assert mapping.column("i").to_pylist() == list(range(ROWS))
    assert mapping.column("uid").to_pylist() == data.column("id").to_pylist()
    metadata = read_folder(out / "metadata")
    assert metadata.column("url").to_pylist() == data.column("url").to_pylist()
    assert metadata.column("caption").to_pylist() == mapping.column("text").to_pylist()
    # A stored vector finds itself first: the published index and data agree.
    _, found = index.search(vectors[[3, 17]], 1)
    assert found[:, 0].tolist() == [3, 17]


def test_card_declares_the_configs_and_the_facts(inputs: ReleaseInputs, tmp_path: Path) -> None:
    out = tmp_path / "release"
    write_release_folder(inputs, out)
    meta = metadata_load(out / "README.md")

    def config(name: str, pattern: str) -> dict:
        return {"config_name": name, "data_files": [{"split": "train", "path": pattern}]}

    # embeddings is the default, so load_dataset(repo) needs no config name.
    assert meta["configs"] == [
        {**config("embeddings", "data/*.parquet"), "default": True},
        config("id_mapping", "id_mapping/*.parquet"),
        config("metadata", "metadata/*.parquet"),
    ]
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert "image-feature-extraction" in card.data.task_categories
    for fact in (
        "| open_clip model | ViT-B-32 |",
        "laion2b_s34b_b79k",
        "f" * 64,
        "70.0%",
        "http_404",
        "recall@10",
        "0123abcd",
        "0.1.0+abc1234",
        "L2-normalised",
        "mode=shortest_side, size=256",
        "resize=224, crop=center, normalize=openai",
        'ClipSearcher.from_hub("org/tiny-sample-clip")',
    ):
        assert fact in card.text, fact


def test_rerun_is_byte_identical(inputs: ReleaseInputs, tmp_path: Path) -> None:
    out = tmp_path / "release"
    write_release_folder(inputs, out, rows_per_file=6)
    first = digests(out)
    write_release_folder(inputs, out, rows_per_file=6)
    assert digests(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release", "store"]  # no leftovers


def test_bad_inputs_fail_and_leave_the_old_release(inputs: ReleaseInputs, tmp_path: Path) -> None:
    out = tmp_path / "release"
    write_release_folder(inputs, out)
    before = digests(out)

    raw = inputs.embeddings[0].with_name("raw.parquet")
    write_embeddings(
        raw, 3 * unit_vectors(7, seed=0), [f"{i:032x}" for i in range(7)], pa.float32()
    )
    not_normalised = dataclasses.replace(inputs, embeddings=[raw, *inputs.embeddings[1:]])
    shuffled = dataclasses.replace(
        inputs, embeddings=[inputs.embeddings[1], inputs.embeddings[0], inputs.embeddings[2]]
    )
    short = dataclasses.replace(inputs, embeddings=inputs.embeddings[:2])
    other_index = tmp_path / "store" / "other_index"
    other_index.mkdir()
    faiss.write_index(faiss.IndexFlatIP(DIM), str(other_index / "faiss"))
    (other_index / "index_infos.json").write_text("{}")
    empty_index = dataclasses.replace(inputs, index_dir=other_index)
    cases = [
        (not_normalised, "L2-normalised"),
        (shuffled, "uids"),
        (short, "id_mapping has 21 rows, embeddings 12"),
        (empty_index, "holds 0 vectors"),
    ]
    for bad, message in cases:
        with pytest.raises(ReleaseError, match=message):
            write_release_folder(bad, out)
    assert digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release", "store"]


def test_model_json_from_the_index_folder_wins(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "store")
    (inputs.index_dir / "model.json").write_text('{"model_name": "ViT-L-14"}\n')
    write_release_folder(inputs, tmp_path / "release")
    assert json.loads((tmp_path / "release" / "model.json").read_text()) == {
        "model_name": "ViT-L-14"
    }


def published_text(folder: Path) -> str:
    """Every text file of a release folder, concatenated (what the Hub would show)."""
    return "".join(p.read_text() for p in sorted(folder.rglob("*")) if p.suffix in (".md", ".json"))


def test_no_local_path_is_published(tmp_path: Path) -> None:
    """A local-folder source and a local model folder are named, never located."""
    model = {
        "model": "local-dir:/home/me/models/shapes-clip",
        "pretrained": None,
        "weights_file": "/home/me/models/shapes-clip/open_clip_model.safetensors",
        "weights_sha256": "e" * 64,
    }
    inputs = make_inputs(
        tmp_path / "store", source_repo="/data/my-urls", source_revision=None, model=model
    )
    out = tmp_path / "release"
    write_release_folder(inputs, out)
    card = DatasetCard.load(out / "README.md")
    assert "source_datasets" not in card.data.to_dict()
    assert "images of my-urls that" in card.text
    assert "`my-urls` at revision `unknown`" in card.text
    assert "| open_clip model | local-dir:shapes-clip |" in card.text
    published = published_text(out)
    for local in ("/data/my-urls", "/home/me", str(tmp_path)):
        assert local not in published, local
    assert json.loads((out / "model.json").read_text()) == {
        "model": "local-dir:shapes-clip",
        "pretrained": None,
        "weights_sha256": "e" * 64,
    }


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("hf://datasets/mlfoundations/datacomp_small", "mlfoundations/datacomp_small"),
        ("gs://bucket/datacomp/small", "gs://bucket/datacomp/small"),
        ("/mnt/crawl/2024-05/", "2024-05"),
    ],
)
def test_lineage_names_the_source_by_its_public_identity(
    tmp_path: Path, source: str, named: str
) -> None:
    inputs = make_inputs(tmp_path / "store", source_repo=source)
    write_release_folder(inputs, tmp_path / "release")
    card = (tmp_path / "release" / "README.md").read_text()
    assert f"- source: `{named}` at revision `0123abcd`" in card
    assert "/mnt/crawl" not in card


def test_card_gives_the_clip_back_command_for_its_model(
    inputs: ReleaseInputs, tmp_path: Path
) -> None:
    write_release_folder(dataclasses.replace(inputs, repo_id="org/tiny-clip"), tmp_path / "r")
    card = (tmp_path / "r" / "README.md").read_text()
    command = card.split("```bash\n", 1)[1].split("```", 1)[0]
    assert command.splitlines() == [
        "hf download org/tiny-clip --repo-type dataset --local-dir tiny_sample \\",
        "  --include image.index --include 'metadata/*'",
        """printf '{"tiny_sample": "%s"}\\n' "$PWD/tiny_sample" > indices_paths.json""",
        "clip-retrieval back --port 1234 --indices_paths indices_paths.json \\",
        '  --clip_model "open_clip:ViT-B-32/laion2b_s34b_b79k" \\',
        "  --enable_mclip_option False --provide_aesthetic_embeddings False --use_jit False",
    ]


def test_card_says_why_clip_back_cannot_serve_a_hub_model_folder(tmp_path: Path) -> None:
    model = {"model": "hf-hub:clip-assets-demo/shapes-clip", "pretrained": None}
    inputs = make_inputs(tmp_path / "store", model=model)
    write_release_folder(inputs, tmp_path / "release")
    card = (tmp_path / "release" / "README.md").read_text()
    assert "```bash" not in card
    assert "cannot load hf-hub:clip-assets-demo/shapes-clip" in card
    assert (
        'create_model_and_transforms("hf-hub:clip-assets-demo/shapes-clip", pretrained=None)'
        in card
    )


def test_release_folder_gets_the_modes_the_umask_gives(tmp_path: Path, umask: int) -> None:
    inputs = make_inputs(tmp_path / "store")
    out = tmp_path / "release"
    write_release_folder(inputs, out, rows_per_file=6)
    write_release_folder(inputs, out, rows_per_file=6)  # replacing an existing folder too
    entries = [out, *out.rglob("*")]
    assert {p.stat().st_mode & 0o777 for p in entries if p.is_dir()} == {0o777 & ~umask}
    assert {p.stat().st_mode & 0o777 for p in entries if p.is_file()} == {0o666 & ~umask}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
