"""Where a registered query set's files are, as a local path an asset can read.

A location is below the storage root (``<root>/<location>``: one file, or a folder such as a
Fondant dataset's ``part.N.parquet`` files) unless it is an absolute local path. A ``gs://``
root is copied to a temporary folder for the duration of the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from resources.storage import StorageResource


@contextmanager
def local_query_set(storage: StorageResource, location: str) -> Iterator[Path]:
    """A local file or folder holding the query set at ``location``, valid inside the block."""
    if Path(location).is_absolute():
        yield Path(location)
    elif storage.exists(location):
        with storage.local_file(location) as local:
            yield local
    elif storage.list(location):
        with storage.local_dir(location) as local:
            yield local
    else:
        raise FileNotFoundError(f"no query set at {storage.uri(location)}")
