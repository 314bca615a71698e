"""The release's dataset card (``README.md``): YAML front matter the Hub reads, prose for people.

The front matter declares the configs: ``embeddings`` -> ``data/*.parquet`` (the default, so
``load_dataset(repo)`` needs no config name) and ``id_mapping`` -> ``id_mapping/*.parquet`` of
the Fondant layout, and ``metadata`` -> ``metadata/*.parquet`` (clip back's); license, tags,
task category and size. The body says what the release is, which model made it, how images were
prepared, how the downloads went (with the report picture when there is one), how good and fast
the index is, where it came from, and how to query it. Sources and models are named by their
public identity (``public.py``): no local path is published. The text depends only on its
inputs (no dates), so a rerun renders the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from clip_assets.release.card_usage import usage
from clip_assets.release.inputs import ReleaseInputs
from clip_assets.release.public import is_hub_repo, model_name, public_model, public_source
from clip_assets.release.report import report_markdown

FONDANT_REPO = "fondant-ai/datacomp-small-clip"
#: The report picture's file name, beside README.md.
REPORT_PNG = "report.png"
_SIZE_BUCKETS = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M"]


def render_card(inputs: ReleaseInputs, infos: dict[str, Any], stats: dict[str, Any]) -> str:
    """The whole README.md; ``infos`` is index_infos.json, ``stats`` has ``rows`` and ``dim``.

    With ``inputs.partitions`` the card shows ``REPORT_PNG``, which the caller writes beside it.
    """
    front = yaml.safe_dump(front_matter(inputs, stats["rows"]), sort_keys=False, allow_unicode=True)
    model = public_model(inputs.model)
    sections = [
        _intro(inputs, stats),
        _model(model, stats["dim"]),
        _preprocessing(model, inputs.download),
        _downloads(inputs.download),
        _report(inputs, infos),
        _index(infos),
        _lineage(inputs),
        usage(inputs.dataset, inputs.repo_id, model),
    ]
    return f"---\n{front}---\n\n" + "\n\n".join(s.strip() for s in sections if s) + "\n"


def front_matter(inputs: ReleaseInputs, rows: int) -> dict[str, Any]:
    """The card's metadata: configs in the Hub's ``configs``/``data_files`` syntax."""
    meta: dict[str, Any] = {
        "license": inputs.license,
        "pretty_name": f"{inputs.dataset} CLIP image embeddings and faiss index",
        "task_categories": ["image-feature-extraction"],
        "tags": ["clip", "embeddings", "faiss", "knn-index", "clip-retrieval", inputs.dataset],
        "size_categories": [_size_category(rows)],
        "configs": [
            {**_config("embeddings", "data/*.parquet"), "default": True},
            _config("id_mapping", "id_mapping/*.parquet"),
            _config("metadata", "metadata/*.parquet"),
        ],
    }
    source = public_source(inputs.source_repo, inputs.dataset)
    if is_hub_repo(source):
        meta["source_datasets"] = [source]
    return meta


def _config(name: str, pattern: str) -> dict[str, Any]:
    return {"config_name": name, "data_files": [{"split": "train", "path": pattern}]}


def _size_category(rows: int) -> str:
    bucket = max(0, math.ceil(math.log10(max(rows, 1))) - 3) if rows > 1000 else 0
    return _SIZE_BUCKETS[min(bucket, len(_SIZE_BUCKETS) - 1)]


def _intro(inputs: ReleaseInputs, stats: dict[str, Any]) -> str:
    source = public_source(inputs.source_repo, inputs.dataset)
    if is_hub_repo(source):
        source = f"[{source}](https://huggingface.co/datasets/{source})"
    return f"""
# {inputs.dataset}: CLIP image embeddings and faiss index

CLIP image embeddings of the images of {source} that
could be downloaded, with a faiss index over them: {stats["rows"]:,} vectors of dimension
{stats["dim"]}. The layout is a superset of [{FONDANT_REPO}](https://huggingface.co/datasets/{FONDANT_REPO}),
so code written for it works unchanged, and the folder is also a clip-retrieval `clip back`
index folder.

Embeddings are **L2-normalised** float32, so inner product = cosine similarity.

| path | content |
|---|---|
| `data/*.parquet` | `id` (= source uid), `url`, `embedding` (list<float32>[{stats["dim"]}]) |
| `id_mapping/*.parquet` | `url`, `i` (faiss id), `uid`, `text` (caption) |
| `metadata/*.parquet` | `url`, `caption`: the clip back metadata |
| `faiss` | the index (`faiss.read_index`) |
| `image.index` | the same bytes as `faiss`, under the name clip back opens |
| `index_infos.json` | index type, search parameters, recall, latency |
| `model.json` | the CLIP model that made the vectors |

In every folder, row k of the files concatenated in name order is faiss id k.
"""


def _model(model: dict[str, Any], dim: int) -> str:
    rows = [
        ("open_clip model", model_name(model)),
        ("pretrained tag", model.get("pretrained")),
        ("weights sha256", model.get("weights_sha256")),
        ("precision", model.get("precision")),
        ("device", model.get("device")),
        ("embedding dimension", dim),
        ("open_clip version", model.get("open_clip_version")),
    ]
    return "## Model\n\n" + _table(("", ""), rows)


def _preprocessing(model: dict[str, Any], download: dict[str, Any]) -> str:
    resize = _describe(download.get("resize")) or "not recorded"
    clip = _describe(model.get("preprocessing")) or "the model's own open_clip transform"
    return f"""
## Preprocessing

1. Download: each URL fetched once; the image decoded, resized and re-encoded ({resize}).
2. CLIP: {clip}; the image embedding is divided by its L2 norm.
"""


def _downloads(download: dict[str, Any]) -> str:
    attempted, ok = download.get("attempted"), download.get("ok")
    rate = download.get("success_rate")
    if rate is None and attempted:
        rate = (ok or 0) / attempted
    lines = ["## Downloads", "", _table(("", ""), [("rows attempted", attempted), ("ok", ok)])]
    lines[-1] += f"\n| success rate | {_percent(rate)} |"
    for title, key in (("By status", "by_status"), ("Top failure reasons", "top_reasons")):
        pairs = _pairs(download.get(key))
        if pairs:
            lines += ["", f"{title}:", "", _table(("", "rows"), pairs)]
    return "\n".join(lines)


def _report(inputs: ReleaseInputs, infos: dict[str, Any]) -> str:
    if not inputs.partitions:
        return ""
    return "## Report\n\n" + report_markdown(inputs.dataset, inputs.partitions, infos, REPORT_PNG)


def _index(infos: dict[str, Any]) -> str:
    latency = infos.get("latency_ms") or {}
    rows = [
        ("index type", infos.get("index_key")),
        ("search parameters", infos.get("index_param") or infos.get("search_params") or None),
        ("vectors", infos.get("nb vectors")),
        ("size (bytes)", infos.get("size in bytes")),
    ]
    recalls = sorted(
        (k for k in infos if k.startswith("recall@") and k[7:].isdigit()), key=lambda k: int(k[7:])
    )
    rows += [(k, _number(infos[k])) for k in recalls]
    rows += [
        ("latency avg (ms)", _number(latency.get("avg", infos.get("avg_search_speed_ms")))),
        ("latency p99 (ms)", _number(latency.get("p99", infos.get("99p_search_speed_ms")))),
    ]
    return "## Index\n\n" + _table(("", ""), rows) + _left_out(infos.get("partitions") or {})


def _left_out(partitions: dict[str, Any]) -> str:
    """Which partitions the index holds, and which it left out (failed, or not yet made)."""
    if not partitions:
        return ""
    left_out = partitions.get("left_out") or {}
    failed, pending = left_out.get("failed") or [], left_out.get("not_materialized") or []
    text = f"\n\nPartitions indexed: {partitions.get('indexed')}."
    if not failed and not pending:
        return text + " None was left out."
    for title, keys in (("failed for good", failed), ("not materialised yet", pending)):
        if keys:
            shown = ", ".join(f"`{key}`" for key in keys[:50])
            more = f" and {len(keys) - 50} more" if len(keys) > 50 else ""
            text += f"\n\nLeft out, {title} ({len(keys)}): {shown}{more}."
    return text


def _lineage(inputs: ReleaseInputs) -> str:
    files = inputs.source_files
    revision = inputs.source_revision or "unknown"
    shown = "".join(f"\n  - `{f}`" for f in files[:20])
    more = f"\n  - ... and {len(files) - 20} more" if len(files) > 20 else ""
    return f"""
## Lineage

- source: `{public_source(inputs.source_repo, inputs.dataset)}` at revision `{revision}`
- source files ({len(files)}):{shown}{more}
- code: clip-assets `{inputs.code_version}`
"""


def _table(header: tuple[str, str], rows: list[tuple[Any, Any]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {'n/a' if v is None else v} |" for k, v in rows]
    return "\n".join(lines)


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """``{name: count}`` or ``[[name, count], ...]`` as pairs, largest count first."""
    if not value:
        return []
    items = value.items() if isinstance(value, dict) else (tuple(v) for v in value)
    return sorted(((str(k), v) for k, v in items), key=lambda kv: (-kv[1], kv[0]))


def _describe(value: Any) -> str:
    """A settings dict as ``k=v, ...``; text as is; nothing as ``""``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value) if value else ""


def _number(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
