"""The card's "How to query" section: clip-assets, datasets, plain faiss + open_clip, clip back.

Reads the dataset name, the repo the card points to and the public model identity; returns
Markdown whose code runs as written against this release with the model that made its vectors
(``clip_back.py`` explains the clip back flags, or why clip back cannot load the model).
"""

from __future__ import annotations

from typing import Any

from clip_assets.model_defaults import DEFAULT_MODEL_NAME
from clip_assets.release.clip_back import clip_back_command
from clip_assets.release.public import model_name


def usage(dataset: str, repo_id: str | None, model: dict[str, Any]) -> str:
    """The section, for ``model`` (a public identity, see ``public.public_model``)."""
    repo = repo_id or "<repo_id>"
    name = model_name(model) or DEFAULT_MODEL_NAME
    tag = model.get("pretrained")
    pretrained = f'"{tag}"' if tag else "None"
    return f"""
## How to query

With clip-assets (downloads `faiss`, `id_mapping/` and `model.json`, then embeds the text with
the same model):

```python
from clip_assets.search import ClipSearcher

searcher = ClipSearcher.from_hub("{repo}")
for hit in searcher.search_texts(["a photo of a cat"], k=10)[0]:
    print(hit.similarity, hit.url, hit.caption)
```

The embeddings are the default config, so `datasets` needs no config name:

```python
from datasets import load_dataset

embeddings = load_dataset("{repo}", split="train")  # id, url, embedding; row i = faiss id i
```

With plain faiss and open_clip:

```python
import glob, json
import faiss, open_clip, pandas as pd, torch
from huggingface_hub import snapshot_download

folder = snapshot_download(
    "{repo}", repo_type="dataset", allow_patterns=["faiss", "index_infos.json", "id_mapping/*"]
)
index = faiss.read_index(f"{{folder}}/faiss")
params = json.load(open(f"{{folder}}/index_infos.json")).get("index_param")
if params:  # the tuned search parameters (nprobe, efSearch, ...)
    faiss.ParameterSpace().set_index_parameters(index, params)
files = sorted(glob.glob(f"{{folder}}/id_mapping/*.parquet"))
mapping = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)  # row i = faiss id i

model, _, _ = open_clip.create_model_and_transforms("{name}", pretrained={pretrained})
tokens = open_clip.get_tokenizer("{name}")(["a photo of a cat"])
with torch.no_grad():
    query = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
scores, ids = index.search(query, 10)
for score, i in zip(scores[0], ids[0]):
    print(score, mapping.url[i], mapping.text[i])
```

{_clip_back(dataset, repo, model)}
"""


def _clip_back(dataset: str, repo: str, model: dict[str, Any]) -> str:
    command, why = clip_back_command(dataset, repo, model)
    intro = (
        "As a clip-retrieval back end: the folder is a `clip back` index folder (`image.index`, "
        "the same bytes as `faiss`, stored once on the Hub, and `metadata/*.parquet` with "
        "`url`, `caption`)."
    )
    if command is None:
        return f"{intro} It cannot serve this release, though: {why}."
    return f"""{intro} This serves it with {why} (`--clip_model`); the other flags turn off
add-ons that fail for open_clip models:

```bash
{command}
```"""
