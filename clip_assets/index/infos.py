"""``index_infos.json``: autofaiss's fields, plus what autofaiss does not measure.

autofaiss's fields keep their names so tools that read its infos (and the Fondant release) still
work: ``index_key``, ``index_param`` (the ``faiss.ParameterSpace`` string to apply at load),
``index_path``, ``size in bytes``, ``avg_search_speed_ms``, ``99p_search_speed_ms``,
``reconstruction error %``, ``nb vectors``, ``vectors dimension``, ``compression ratio``.
Ours: ``format``, ``metric_type``, ``search_params``, ``recall@1``/``recall@k`` (held-out image
queries), ``recall`` (per query set, with definitions), ``latency_ms``, ``tuning`` (target and
curve), ``mode``/``mode_reason``, ``key_reason``, ``autofaiss_key`` (what autofaiss would have
built, when a two-stage key replaced it) and ``candidates`` (every two-stage key measured, with
its estimated size, pick and recall/latency curve), ``rejected_key`` (an HNSW pick built, measured
short of the target and replaced by an IVF over the vectors, with its recall and curve; else
null), ``training_vectors``, ``timings_s`` and
``cpu_s`` per phase, ``peak_rss_bytes``, ``settings``, versions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clip_assets.paths import INFOS_NAME

FORMAT = "clip-assets/index-infos/1"


def _plain(value: Any) -> Any:
    """numpy scalars and tuples to JSON types, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def write_infos(infos: dict[str, Any], index_dir: Path) -> Path:
    """Write ``index_dir/index_infos.json`` atomically; returns its path."""
    path = Path(index_dir) / INFOS_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(infos), indent=1))
    os.replace(tmp, path)
    return path


def read_infos(index_dir_or_file: Path) -> dict[str, Any]:
    """Infos from an index folder or the json file itself (ours or autofaiss's)."""
    path = Path(index_dir_or_file)
    if path.is_dir():
        path = path / INFOS_NAME
    return json.loads(path.read_text())
