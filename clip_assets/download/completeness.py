"""Whether a stored images file already answers a metadata slice, so a rerun can keep it.

A run killed after a partition's images were written, or a backfill launched twice, must not
fetch those URLs again. A file is complete for a slice when it holds one row per metadata row
with the same uids in the same order, was written to the end (its footer holds the counts),
and was made with the same output settings (``DownloadSettings.OUTPUT_FIELDS``): changing how
images are resized or checked makes it stale, changing concurrency or timeouts does not.
"""

from __future__ import annotations

import pyarrow as pa

from clip_assets.download.download_settings import (
    OUTPUT_FIELDS,
    DownloadSettings,
    recorded_settings,
)
from clip_assets.download.summary import stored_summary


def why_incomplete(
    file_metadata: dict[bytes, bytes] | None,
    schema_metadata: dict[bytes, bytes] | None,
    stored_uids: pa.ChunkedArray | pa.Array,
    metadata: pa.Table,
    settings: DownloadSettings,
) -> str | None:
    """Why the stored file does not answer ``metadata`` under ``settings``; None when it does.

    ``file_metadata``/``schema_metadata``: the stored file's footer and schema key-values;
    ``stored_uids``: its ``uid`` column.
    """
    if stored_summary(file_metadata) is None:
        return "the stored file records no counts (written by an older version)"
    changed = settings_changed(schema_metadata, settings)
    if changed is not None:
        return changed
    if len(stored_uids) != metadata.num_rows:
        return f"the stored file has {len(stored_uids)} rows, the metadata {metadata.num_rows}"
    if not _array(stored_uids).equals(_array(metadata["uid"])):
        return "the stored file lists other uids than the metadata"
    return None


def settings_changed(
    schema_metadata: dict[bytes, bytes] | None, settings: DownloadSettings
) -> str | None:
    """How the output settings recorded in a stored images file differ from ``settings``;
    None when they are the same (its ok rows are then what a new download would store)."""
    recorded = recorded_settings(schema_metadata)
    if recorded is None:
        return "the stored file records no settings"
    changed = [name for name in OUTPUT_FIELDS if recorded.get(name) != getattr(settings, name)]
    if not changed:
        return None
    return "settings changed: " + ", ".join(
        f"{name} {recorded.get(name)!r} -> {getattr(settings, name)!r}" for name in changed
    )


def _array(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
