"""Open a dataset's index straight from the pipeline's storage (local folder or ``gs://``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from clip_assets.search.layout import index_files
from clip_assets.search.searcher import ClipSearcher


class LocalDirs(Protocol):
    """The one storage method used here (``resources.storage.StorageResource`` has it)."""

    def local_dir(self, prefix: str) -> Any:
        """A context manager yielding a local folder with the files below ``prefix``."""


@contextmanager
def open_stored(storage: LocalDirs, dataset: str, **kwargs: Any) -> Iterator[ClipSearcher]:
    """A searcher over ``<root>/<dataset>/index`` and ``id_mapping``, valid inside the block.

    Only those two folders are fetched (a ``gs://`` root downloads them to a temporary folder,
    removed on exit), never the images or embeddings. ``kwargs`` go to ``ClipSearcher.from_files``.
    """
    with ExitStack() as stack:
        index_dir = Path(stack.enter_context(storage.local_dir(f"{dataset}/index")))
        mapping_dir = Path(stack.enter_context(storage.local_dir(f"{dataset}/id_mapping")))
        index = index_dir / "faiss"
        if not index.is_file():
            raise FileNotFoundError(f"dataset {dataset!r} has no index yet ({dataset}/index/faiss)")
        yield ClipSearcher.from_files(index_files(index, mapping_dir), **kwargs)
