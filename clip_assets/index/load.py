"""Open a built index for search: memory-mapped, tuned as recorded."""

from __future__ import annotations

from pathlib import Path

import faiss

from clip_assets.index.infos import read_infos
from clip_assets.index.params import apply_search_params
from clip_assets.paths import INDEX_NAME

#: Measured with faiss 1.15.1: IO_FLAG_MMAP_IFC maps the whole file for every index type we
#: build or read (Flat, HNSW, SQ, IVF-Flat/PQ/SQ, fast-scan, refine stages, OPQ/PCA
#: transforms) with results identical to a full read, while IO_FLAG_MMAP leaves fast-scan
#: lists, refine stages and HNSW in anonymous memory.
MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


def open_index(index_dir: Path, mmap: bool = True) -> faiss.Index:
    """Read ``index_dir/faiss`` and apply the search parameters recorded in
    ``index_dir/index_infos.json`` (``index_param``; ours or autofaiss's, e.g. a Fondant release).

    With ``mmap`` the file is memory-mapped read-only, so a large index opens without loading it;
    a folder without infos opens with faiss's default search parameters. Raises ``RuntimeError``
    (faiss) on an unreadable file and ``RuntimeError`` when a recorded parameter does not apply.
    """
    index_dir = Path(index_dir)
    infos_path = index_dir / "index_infos.json"
    infos = read_infos(infos_path) if infos_path.exists() else {}
    path = str(index_dir / INDEX_NAME)
    index = faiss.read_index(path, MMAP_FLAGS if mmap else 0)
    if infos.get("index_param"):
        apply_search_params(index, infos["index_param"])
    return index
