"""What a served index is, in the figures a person asks for: key, size, recall, model, mapping.

Reads a ``ClipSearcher`` (its faiss index, ``index_infos.json`` and query model). ``recall``
holds recall@k per query set as the index build measured it (``image``: held-out image
queries, ``text``: caption queries), absent where the infos carry none (autofaiss's own, clip
back's folder). ``memory_mapped`` says whether the index file is mapped into this process
(``None`` where the platform cannot tell).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss

from clip_assets.search.searcher import ClipSearcher

_MAPS = Path("/proc/self/maps")


@dataclass(frozen=True)
class IndexSummary:
    """One index's figures; ``to_dict`` for JSON, ``line`` for a start-up message."""

    name: str
    vectors: int
    dim: int
    index_key: str
    recall_k: int | None
    recall: dict[str, float] = field(default_factory=dict)
    model: str = ""
    memory_mapped: bool | None = None
    dedup_method: str = "embedding"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def line(self) -> str:
        """``name: N vectors, key, recall@10 0.97 image / 0.95 text, model M, memory-mapped``."""
        recall = " / ".join(f"{v:.3f} {q}" for q, v in self.recall.items())
        parts = [
            f"{self.name}: {self.vectors:,} vectors of {self.dim}",
            self.index_key,
            f"recall@{self.recall_k} {recall}" if recall else "recall not measured",
            f"model {self.model}",
        ]
        if self.memory_mapped is not None:
            parts.append("memory-mapped" if self.memory_mapped else "read into memory")
        return ", ".join(parts)


def summarize(name: str, searcher: ClipSearcher) -> IndexSummary:
    """The figures of ``searcher``, served as ``name``."""
    infos = searcher.infos
    k = infos.get("recall_k")
    recall = {}
    for queries, figures in (infos.get("recall") or {}).items():
        if isinstance(figures, dict) and f"recall@{k}" in figures:
            recall[queries] = float(figures[f"recall@{k}"])
    model = searcher.model
    return IndexSummary(
        name=name,
        vectors=len(searcher),
        dim=searcher.dim,
        index_key=infos.get("index_key") or type(faiss.downcast_index(searcher.index)).__name__,
        recall_k=k if recall else None,
        recall=recall,
        model=f"{model.model_name} {model.pretrained or '(no pretrained tag)'}",
        memory_mapped=is_mapped(searcher.index_path),
        dedup_method=searcher.dedup_method,
    )


def is_mapped(path: Path | None) -> bool | None:
    """Whether ``path`` is memory-mapped into this process; ``None`` where unknown."""
    if path is None or not _MAPS.exists():
        return None
    target = os.path.realpath(path)
    with _MAPS.open() as maps:
        return any(line.rstrip("\n").endswith(" " + target) for line in maps)
