"""Open a built index for search: memory-mapped where the index type allows, tuned as recorded."""

from __future__ import annotations

from pathlib import Path

import faiss

from clip_assets.index.infos import read_infos
from clip_assets.index.params import apply_search_params
from clip_assets.paths import INDEX_NAME


def _mmap_flag(index_key: str | None) -> int:
    """IVF indexes mmap their inverted lists (IO_FLAG_MMAP); flat-code ones (Flat, HNSW storage)
    their codes (IO_FLAG_MMAP_IFC, faiss >= 1.9). The two cannot be combined on IVF files."""
    if index_key is None or "IVF" in index_key or "IMI" in index_key:
        return faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
    return faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


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
    flags = _mmap_flag(infos.get("index_key")) if mmap else 0
    index = faiss.read_index(path, flags)
    if infos.get("index_param"):
        apply_search_params(index, infos["index_param"])
    return index
