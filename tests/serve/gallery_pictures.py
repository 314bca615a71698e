"""The serve tests' gallery: which pictures it holds and what its index infos say."""

from __future__ import annotations

from clip_assets.offline.images import jpeg

N_IMAGES = 24


#: What the gallery's index_infos.json says the build measured.
RECALL = {"image": {"recall@10": 0.975}, "text": {"recall@10": 0.925}}


def picture(i: int) -> bytes:
    """Gallery image ``i``: a JPEG, different shapes and colours per ``i``; every third one is
    portrait (120x160), the rest landscape (160x120)."""
    return jpeg(120, 160, seed=i) if i % 3 == 0 else jpeg(160, 120, seed=i)
