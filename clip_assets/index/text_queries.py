"""Captions to measure text-to-image recall with: a deterministic sample across partitions."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def sample_captions(
    keys: Sequence[str], read_captions: Callable[[str], list[str | None]], count: int
) -> list[str]:
    """Up to ``count`` non-empty captions spread evenly over the partitions ``keys``, the same
    ones on every call; ``read_captions(key)`` returns one partition's captions in row order."""
    if not keys or count <= 0:
        return []
    per_partition = max(1, count // len(keys))
    captions: list[str] = []
    for key in keys:
        present = [text for text in read_captions(key) if text]
        step = max(1, len(present) // per_partition)
        captions.extend(present[::step][:per_partition])
    return captions[:count]
