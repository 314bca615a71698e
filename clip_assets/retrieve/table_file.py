"""A parquet file written a table at a time that appears only when complete.

``table_file`` yields a function appending tables of one schema to a zstd parquet file; the
file replaces ``path`` only if the block ends normally (``atomic_files.replacing``), so a reader
sees the previous file or the whole new one. Every output of the retrieval stage goes through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clip_assets.atomic_files import replacing


@contextmanager
def table_file(path: str | Path, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """Appends ``schema`` tables as row groups of the file that will be ``path``."""
    with replacing(Path(path)) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as out:
        yield out.write_table
