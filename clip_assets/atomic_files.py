"""Files and folders that appear whole, with the permissions the umask gives.

A write goes to a fresh name in the target's folder and is renamed over the target, so a
reader sees the old file or the new one, never half of one. The fresh name is created here
with mode 0666 (files) or 0777 (folders) filtered by the process umask, as ``open`` and
``mkdir`` would: ``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 on purpose, and that mode
survives the rename, so a stored index would be unreadable to a search service running as
another user whatever the umask said.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def _fresh(parent: Path, prefix: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """A new name in ``parent`` made by ``create`` (which fails if the name exists)."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {parent}")


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666))


def unique_file(folder: Path, prefix: str, suffix: str = TEMP_SUFFIX) -> Path:
    """An empty file ``<prefix><random><suffix>`` in ``folder``, mode 0666 less the umask."""
    return _fresh(Path(folder), prefix, suffix, _create_file)


def unique_dir(folder: Path, prefix: str) -> Path:
    """An empty folder ``<prefix><random>`` in ``folder``, mode 0777 less the umask."""
    return _fresh(Path(folder), prefix, "", lambda path: path.mkdir(0o777))


@contextmanager
def replacing(target: Path, tag: str = ".") -> Iterator[Path]:
    """Yields a temporary path ``.<name><tag><random>.tmp`` beside ``target`` to write; it
    replaces ``target`` if the block ends normally and is removed otherwise (``target`` is
    then untouched). The folder must exist; ``tag`` may name the writer (an owner tag)."""
    target = Path(target)
    tmp = unique_file(target.parent, f".{target.name}{tag}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
