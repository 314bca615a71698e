"""What a searcher reports about its index (key, size, recall, model), and that the index file
is memory-mapped in every layout and index type, not read into anonymous memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from index_folders import storage_layout

from clip_assets.search import ClipSearcher
from clip_assets.search.index_summary import summarize

RECALL = {
    "recall_k": 10,
    "recall@1": 0.9,
    "recall@10": 0.97,
    "recall": {
        "image": {"queries": 100, "held_out": True, "recall@1": 0.9, "recall@10": 0.97},
        "text": {"queries": 50, "held_out": True, "recall@1": 0.8, "recall@10": 0.91},
        "definition": "share of the exact neighbours found",
    },
}


def mapped_bytes(path: Path) -> int:
    """Bytes of ``path`` mapped into this process (from /proc/self/smaps)."""
    target, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                inside = fields[-1] == target
            elif inside and fields[0] == "Size:":
                total += int(fields[1]) * 1024
    return total


@pytest.mark.parametrize("key", ["Flat", "HNSW16", "IVF4,Flat", "IVF4,PQ16x4fs,RFlat"])
def test_index_is_memory_mapped_and_reports_its_figures(
    tmp_path: Path, vectors: np.ndarray, key: str
) -> None:
    ds = storage_layout(tmp_path, vectors, key=key)
    infos_path = ds / "index" / "index_infos.json"
    infos_path.write_text(json.dumps({**json.loads(infos_path.read_text()), **RECALL}))
    index_file = ds / "index" / "faiss"
    in_memory = ClipSearcher.open(ds, mmap=False)
    assert mapped_bytes(index_file) == 0
    assert summarize("tiny", in_memory).memory_mapped is False

    searcher = ClipSearcher.open(ds)
    assert mapped_bytes(index_file) >= index_file.stat().st_size
    summary = summarize("tiny", searcher)
    assert summary.memory_mapped is True
    assert (summary.index_key, summary.vectors, summary.dim) == (key, 300, 64)
    assert (summary.recall_k, summary.recall) == (10, {"image": 0.97, "text": 0.91})
    assert "recall@10 0.970 image / 0.910 text" in summary.line()
    assert searcher.search(vectors[8], k=1)[0][0].id == 8


def test_clip_back_folder_maps_too_and_says_recall_is_unknown(clip_back_dir: Path) -> None:
    searcher = ClipSearcher.open(clip_back_dir)
    summary = summarize("laion", searcher)
    index_file = clip_back_dir / "image.index"
    assert mapped_bytes(index_file) >= index_file.stat().st_size
    assert summary.memory_mapped is True
    assert summary.index_key == "IndexFlatIP"  # no index_infos.json: faiss's own type name
    assert summary.recall == {}
    assert "recall not measured" in summary.line()
    assert summary.to_dict()["model"] == "ViT-B-32 laion2b_s34b_b79k"
