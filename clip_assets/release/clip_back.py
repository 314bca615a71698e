"""The clip-retrieval ``clip back`` command line that serves a release folder with its own model.

Reads a model identity (``model``/``model_name`` and ``pretrained``, as in ``model.json``).
Returns the shell lines, or None with the reason when clip back cannot load that model.
Why each flag (clip-retrieval 2.45, ``clip_back.py`` and all_clip's ``load_open_clip``):

- ``--clip_model open_clip:<model>/<tag>``: all_clip splits the text after ``open_clip:`` at
  ``/`` into an open_clip model name and a pretrained tag. Without a tag it takes the first tag
  open_clip lists for that model, which need not be the weights that made the vectors; a
  ``hf-hub:org/repo`` name or a local path cannot pass through that split at all.
- ``--enable_mclip_option False``: on by default, and it raises for every model but OpenAI's
  ``ViT-B/32`` and ``ViT-L/14`` (no multilingual text tower for the others).
- ``--provide_aesthetic_embeddings False``: on by default; it downloads embeddings that exist
  only for OpenAI's two models and raises for any other.
- ``--use_jit False``: TorchScript cannot compile several open_clip models, and the
  maintainer's advice for open_clip models in clip back is to turn it off; results are the
  same.
- ``--indices_paths``: a JSON file naming the index folder; clip back reads ``image.index`` and
  ``metadata/*.parquet`` (``url``, ``caption``) there, row n = faiss id n.

Writes nothing.
"""

from __future__ import annotations

from typing import Any

from clip_assets.release.public import model_name

PORT = 1234


def clip_model_flag(model: dict[str, Any]) -> tuple[str | None, str]:
    """``(flag value, why)``: ``open_clip:<model>/<tag>``, or None and why clip back cannot
    load ``model``."""
    name = model_name(model)
    tag = model.get("pretrained")
    if not name:
        return None, "model.json names no model"
    if ":" in name or "/" in name:
        return None, (
            f"clip back's open_clip loader splits the model at '/' into a model name and a "
            f"pretrained tag, so it cannot load {name}"
        )
    if not tag or "/" in tag or "\\" in tag or "." in tag:
        return None, (
            f"the vectors come from {name} with weights that are not an open_clip pretrained "
            "tag, and clip back loads weights only by tag"
        )
    return f"open_clip:{name}/{tag}", "the model and weights that made the vectors"


def clip_back_command(dataset: str, repo: str, model: dict[str, Any]) -> tuple[str | None, str]:
    """``(shell lines, why)``: fetch what clip back reads of Hub repo ``repo`` into
    ``./<dataset>``, name it in ``indices_paths.json`` and serve it as index ``dataset``."""
    flag, why = clip_model_flag(model)
    if flag is None:
        return None, why
    lines = [
        f"hf download {repo} --repo-type dataset --local-dir {dataset} \\",
        "  --include image.index --include 'metadata/*'",
        f'printf \'{{"{dataset}": "%s"}}\\n\' "$PWD/{dataset}" > indices_paths.json',
        f"clip-retrieval back --port {PORT} --indices_paths indices_paths.json \\",
        f'  --clip_model "{flag}" \\',
        "  --enable_mclip_option False --provide_aesthetic_embeddings False --use_jit False",
    ]
    return "\n".join(lines), why
