"""Write the release folder: exactly the files that get uploaded (docs/architecture.md, "Release
layout").

Reads the stored embeddings and id_mapping parquet files, ``index_dir/faiss``,
``index_dir/index_infos.json`` and (if present) ``index_dir/model.json``. Writes ``out_dir``::

    data/train-*.parquet        id, url, embedding list<float32>   (Fondant layout)
    id_mapping/train-*.parquet  url, i, uid, text                  (Fondant layout + uid, text)
    metadata/train-*.parquet    url, caption                       (clip back)
    faiss                       the index, as built                (Fondant layout)
    image.index                 hard link to faiss                 (clip back)
    index_infos.json            copied as is
    model.json                  which CLIP model made the vectors  (our search reads it)
    README.md                   the dataset card
    report.png                  the card's picture (with per-partition figures only)

Guarantees: row i of every folder's sorted concatenation is faiss id i, and the index, the
embeddings and the mapping agree on count, dimension and uid order, else ``ReleaseError`` and
``out_dir`` is untouched. No local path is published: ``model.json`` and the card name the
model and the source by their public identity (``public.py``). The folder is built in a
temporary sibling and renamed over ``out_dir``, so readers see the old release or the new one,
never a half-written one. Same inputs give the same bytes (no timestamps anywhere). Folders and
files get the modes the umask gives.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import faiss

from clip_assets.atomic_files import unique_dir
from clip_assets.release.card import REPORT_PNG, render_card
from clip_assets.release.inputs import ReleaseInputs
from clip_assets.release.public import public_model
from clip_assets.release.report import render_png
from clip_assets.release.tables import ReleaseError, count_rows, write_data, write_mappings

#: ~200 MB data files at 512-d float32: big enough for few files, small enough to stream.
ROWS_PER_FILE = 100_000


def write_release_folder(
    inputs: ReleaseInputs, out_dir: Path, *, rows_per_file: int = ROWS_PER_FILE
) -> dict:
    """Build the release folder at ``out_dir`` (replacing any previous one).

    Returns ``{"release_dir", "rows", "dim", "files": {path: bytes}, "bytes"}``, JSON-ready.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = unique_dir(out_dir.parent, f".{out_dir.name}.build-")
    try:
        stats = _build(inputs, build, rows_per_file)
        _replace_dir(build, out_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    files = {
        p.relative_to(out_dir).as_posix(): p.stat().st_size
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }
    return {
        "release_dir": str(out_dir),
        "rows": stats["rows"],
        "dim": stats["dim"],
        "files": files,
        "bytes": sum(files.values()),
    }


def _build(inputs: ReleaseInputs, build: Path, rows_per_file: int) -> dict:
    index_path = inputs.index_dir / "faiss"
    infos_path = inputs.index_dir / "index_infos.json"
    for path in (index_path, infos_path, *inputs.embeddings, *inputs.id_mapping):
        if not Path(path).is_file():
            raise ReleaseError(f"missing release input {path}")
    rows = count_rows(inputs.embeddings)
    if rows == 0:
        raise ReleaseError("no embeddings to release")
    mapped = count_rows(inputs.id_mapping)
    if mapped != rows:
        raise ReleaseError(f"id_mapping has {mapped} rows, embeddings {rows}")
    index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    if index.ntotal != rows:
        raise ReleaseError(f"{index_path} holds {index.ntotal} vectors, embeddings {rows} rows")

    data = write_data(inputs.embeddings, build / "data", rows, rows_per_file)
    if data["dim"] != index.d:
        raise ReleaseError(f"embeddings are {data['dim']}-d, {index_path} is {index.d}-d")
    mappings = write_mappings(inputs.id_mapping, build, rows, rows_per_file)
    if mappings["uids_sha256"] != data["uids_sha256"]:
        raise ReleaseError("id_mapping and embeddings list different uids (or in another order)")

    _link_or_copy(index_path, build / "faiss")
    # clip back opens <folder>/image.index; a hard link costs no disk, and the upload sends
    # the bytes once (see upload.py).
    os.link(build / "faiss", build / "image.index")
    shutil.copyfile(infos_path, build / "index_infos.json")
    model_path = inputs.index_dir / "model.json"
    model = json.loads(model_path.read_text()) if model_path.is_file() else inputs.model
    (build / "model.json").write_text(
        json.dumps(public_model(model), indent=2, sort_keys=True) + "\n"
    )

    infos = json.loads(infos_path.read_text())
    stats = {"rows": rows, "dim": data["dim"], "files": len(list((build / "data").iterdir()))}
    if inputs.partitions:
        png = render_png(
            inputs.dataset, inputs.partitions, infos, success_floor=inputs.success_floor
        )
        (build / REPORT_PNG).write_bytes(png)
    (build / "README.md").write_text(render_card(inputs, infos, stats))
    return stats


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link when on one filesystem (the index is written once, by rename, never edited in
    place, so the link is a stable snapshot); copy otherwise."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first, then removed."""
    old = None
    if target.exists():
        old = unique_dir(target.parent, f".{target.name}.old-")
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)
