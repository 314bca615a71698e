"""Find the files of a searchable index in any of the folder layouts we read.

Layouts, detected from what the folder holds:

- our storage, ``<root>/<ds>/``: ``index/faiss``, ``index/index_infos.json``, ``id_mapping/``;
- our release folder or its Hugging Face repo, and the Fondant layout
  (``fondant-ai/datacomp-small-clip``): ``faiss``, ``index_infos.json``, ``id_mapping/``;
- a clip-retrieval ``clip back`` index folder: ``image.index`` and ``metadata/`` (row n is faiss
  id n).

``model.json`` (which CLIP model made the vectors) sits beside the index file when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What ``snapshot_download`` fetches from a Hub repo: the index and its mapping, never the
#: (much larger) ``data/`` embeddings.
HUB_PATTERNS = ["faiss", "index_infos.json", "model.json", "id_mapping/*"]


class LayoutError(FileNotFoundError):
    """The folder holds no index in any layout we know."""


@dataclass(frozen=True)
class IndexFiles:
    """Paths of one index: the faiss file, its mapping folder and optional side files."""

    index: Path
    id_mapping: Path
    infos: Path | None = None
    model: Path | None = None

    def read_infos(self) -> dict[str, Any]:
        """``index_infos.json`` as a dict; empty when the layout has none."""
        return _read_json(self.infos)

    def read_model(self) -> dict[str, Any]:
        """``model.json`` as a dict; empty when the layout has none."""
        return _read_json(self.model)


def locate(folder: str | Path) -> IndexFiles:
    """The index files under ``folder``, whichever layout it uses; raises ``LayoutError``."""
    root = Path(folder)
    candidates = [
        (root / "index" / "faiss", root / "id_mapping"),
        (root / "faiss", root / "id_mapping"),
        (root / "image.index", root / "metadata"),
    ]
    for index, mapping in candidates:
        if index.is_file():
            if not mapping.is_dir() or not any(mapping.glob("*.parquet")):
                raise LayoutError(f"{index} has no id mapping: expected parquet files in {mapping}")
            return index_files(index, mapping)
    raise LayoutError(
        f"no index in {root}: expected index/faiss (storage), faiss (release, Fondant) "
        "or image.index (clip back)"
    )


def index_files(index: Path, id_mapping: Path) -> IndexFiles:
    """``IndexFiles`` for an index file, its mapping folder and the side files beside the index."""
    infos, model = index.parent / "index_infos.json", index.parent / "model.json"
    return IndexFiles(
        index=index,
        id_mapping=id_mapping,
        infos=infos if infos.is_file() else None,
        model=model if model.is_file() else None,
    )


def download_from_hub(
    repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Download the index files of a Hub dataset repo (cached) and return the local folder."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=HUB_PATTERNS,
        )
    )


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return json.loads(path.read_text())
