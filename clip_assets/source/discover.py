"""Finding what a source holds that the manifest does not: new files, new slices, new versions."""

from __future__ import annotations

from dataclasses import dataclass

from clip_assets.registry import DatasetSpec
from clip_assets.source.files import NO_HUB_ACCESS, HubAccess, count_rows, list_source_files
from clip_assets.source.slices import ShardSlice, plan_slices


@dataclass(frozen=True)
class Discovery:
    """The manifest after a look at the source, and which keys are new, changed or gone
    (a file that shrank has fewer slices)."""

    manifest: dict[str, ShardSlice]
    added: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def to_run(self) -> list[str]:
        return sorted(self.added + self.changed)


def discover_slices(
    spec: DatasetSpec, known: dict[str, ShardSlice], hub: HubAccess = NO_HUB_ACCESS
) -> Discovery:
    """Lists the source and plans slices for every file not yet known at its current version.

    Files already in ``known`` at the same version are not opened again, so a look at an
    unchanged source costs one listing. A file whose bytes changed keeps its keys (they name
    the file and slice) and those keys are reported as changed, so they are recomputed.
    """
    known_versions = {(s.file, s.version) for s in known.values()}
    manifest = dict(known)
    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    for file in list_source_files(spec, hub):
        if (file.path, file.version) in known_versions:
            continue
        stale = [key for key, s in manifest.items() if s.file == file.path]
        for key in stale:
            del manifest[key]
        for piece in plan_slices(file, count_rows(spec, file, hub), spec.rows_per_partition):
            manifest[piece.key] = piece
            (changed if piece.key in stale else added).append(piece.key)
        removed.extend(key for key in stale if key not in manifest)
    return Discovery(manifest, sorted(added), sorted(changed), sorted(removed))
