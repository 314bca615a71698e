"""Finding what a source holds that the manifest does not: new files, new slices, new versions.

Guarantees: a file whose bytes did not change (a touch, a copy, a re-upload) keeps its slices
and none of them is listed to run; a file that cannot be used (corrupt or truncated parquet,
unreadable, no url column, a key another file holds, too many slices) is skipped and
reported as a :class:`SourceProblem`, while the other files are discovered and the skipped
file's earlier slices, if any, stay as they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from clip_assets.registry import DatasetSpec
from clip_assets.source.files import (
    NO_HUB_ACCESS,
    HubAccess,
    KnownVersions,
    SourceError,
    SourceFile,
    read_footer,
    scan_source,
    source_uri,
)
from clip_assets.source.slices import ShardSlice, plan_slices


@dataclass(frozen=True)
class SourceProblem:
    """One source file discovery skipped, and why (the message names the file)."""

    file: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Discovery:
    """The manifest after a look at the source, which keys are new, changed or gone (a file
    that shrank has fewer slices), and the files that were skipped."""

    manifest: dict[str, ShardSlice]
    added: list[str]
    changed: list[str]
    removed: list[str]
    problems: list[SourceProblem] = field(default_factory=list)
    #: The manifest differs from the known one (also when only a version record was renewed,
    #: e.g. a touched file's new mtime): store it, so the next look need not hash again.
    manifest_changed: bool = False

    @property
    def to_run(self) -> list[str]:
        return sorted(self.added + self.changed)


def _same_bytes(old: ShardSlice, file: SourceFile) -> bool:
    if old.version == file.version:
        return True
    # Before versions named content, a local file's version was "<size>-<mtime_ns>" (how its
    # fingerprint begins) and a GCS object's its generation (its fingerprint): unchanged, they
    # still vouch for unchanged bytes, so an upgrade redoes nothing.
    fingerprint = file.fingerprint
    return fingerprint is not None and (
        old.version == fingerprint or fingerprint.startswith(old.version + "-")
    )


def _slices(spec: DatasetSpec, file: SourceFile, hub: HubAccess) -> list[ShardSlice]:
    """The file's slices, from its footer; SourceError when the file cannot be used."""
    footer = read_footer(spec, file, hub)
    columns = footer.schema.to_arrow_schema().names
    if spec.url_column not in columns:
        raise SourceError(
            f"{source_uri(spec, file.path)} has no url column {spec.url_column!r}; columns: "
            f"{', '.join(columns)} (set url_column in the dataset registry)"
        )
    return plan_slices(file, footer.num_rows, spec.rows_per_partition)


def _key_clash(
    spec: DatasetSpec, file: SourceFile, pieces: list[ShardSlice], owner: dict[str, str]
) -> str | None:
    """Why ``file`` cannot have its keys: one of them (case-folded) is another file's."""
    for piece in pieces:
        holder = owner.get(piece.key.casefold(), file.path)
        if holder != file.path:
            return (
                f"{source_uri(spec, file.path)} would get partition key {piece.key}, which "
                f"{holder} holds: the file is skipped (rename one of them)"
            )
    return None


def known_versions(manifest: dict[str, ShardSlice]) -> KnownVersions:
    """What a listing may reuse from ``manifest``: file -> (fingerprint, version)."""
    return {s.file: (s.fingerprint, s.version) for s in manifest.values() if s.fingerprint}


def discover_slices(
    spec: DatasetSpec, known: dict[str, ShardSlice], hub: HubAccess = NO_HUB_ACCESS
) -> Discovery:
    """Lists the source and plans slices for every file not yet known at its current version.

    Files already in ``known`` with the same bytes are not opened again (a local file is
    hashed only when its size, mtime, ctime or inode moved), so a look at an unchanged source
    costs one listing. A file whose bytes changed keeps its keys (they name the file and slice) and
    those keys are reported as changed, so they are recomputed.
    """
    keys_of: dict[str, list[str]] = {}
    for key, piece in known.items():
        keys_of.setdefault(piece.file, []).append(key)
    cache = known_versions(known)
    listing = scan_source(spec, hub, cache)
    problems = [SourceProblem(path, why) for path, why in listing.unreadable]
    # Keys by case-folded spelling: two keys differing only in case would share a file on a
    # case-insensitive disk.
    owner = {key.casefold(): piece.file for key, piece in known.items()}
    manifest = dict(known)
    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    for file in listing.files:
        stale = keys_of.get(file.path, [])
        if stale and _same_bytes(known[stale[0]], file):
            for key in stale:
                manifest[key] = dataclasses.replace(
                    known[key], version=file.version, fingerprint=file.fingerprint
                )
            continue
        try:
            pieces = _slices(spec, file, hub)
        except SourceError as error:
            problems.append(SourceProblem(file.path, str(error)))
            continue
        clash = _key_clash(spec, file, pieces, owner)
        if clash:
            problems.append(SourceProblem(file.path, clash))
            continue
        for key in stale:
            del manifest[key]
            del owner[key.casefold()]
        for piece in pieces:
            manifest[piece.key] = piece
            owner[piece.key.casefold()] = file.path
            (changed if piece.key in stale else added).append(piece.key)
        removed.extend(key for key in stale if key not in manifest)
    return Discovery(
        manifest,
        sorted(added),
        sorted(changed),
        sorted(removed),
        problems,
        manifest_changed=manifest != known,
    )
