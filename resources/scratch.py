"""Scratch folders for work in progress, kept in the storage root's own area and cleaned up
when the process that made them is gone.

A run streams a partition's images, builds an index or writes a release in a scratch folder
before one atomic store. A run killed with ``kill -9`` cannot remove its folder, so every
folder's name carries its owner (pid and process start second); :func:`remove_orphans`, run
when a storage resource starts, removes the folders, and the half-written ``.tmp`` files of
interrupted writes, whose owner no longer lives.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clip_assets.atomic_files import unique_dir
from clip_assets.processes import is_alive, this_process

_OWNED = re.compile(r"\.(\d+)-(\d+)\.")


def owner_tag() -> str:
    """``.<pid>-<start second>.``: put in a temporary name, it says who may remove it."""
    pid, start = this_process()
    return f".{pid}-{start}."


@contextmanager
def scratch_dir(area: Path, label: str) -> Iterator[Path]:
    """A fresh folder in ``area`` for the duration of the block, removed afterwards."""
    area.mkdir(parents=True, exist_ok=True)
    # The mode the umask gives, not mkdtemp's 0700: a finished folder is renamed into the
    # store as it is (``LocalStorage.replace_folder``).
    folder = unique_dir(area, f"{label}{owner_tag()}")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_orphan(name: str) -> bool:
    """Whether the temporary ``name`` carries an owner tag of a process that is gone."""
    match = _OWNED.search(name)
    return match is not None and not is_alive(int(match.group(1)), int(match.group(2)))


def remove_orphans(area: Path, stored: Path | None = None) -> list[Path]:
    """Removes the scratch folders in ``area`` and the ``.tmp`` files below ``stored`` whose
    owner is gone; returns what it removed."""
    removed: list[Path] = []
    if area.is_dir():
        for folder in area.iterdir():
            if folder.is_dir() and is_orphan(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    if stored is not None and stored.is_dir():
        for leftover in stored.rglob(".*.tmp"):
            if leftover.is_file() and is_orphan(leftover.name):
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed
