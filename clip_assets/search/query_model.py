"""Which CLIP model turns a text or image query into a vector for an index.

Queries must be embedded with the model that embedded the indexed images, so each index folder
may carry ``model.json`` beside its faiss file::

    {"model_name": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "dim": 512}

(``model`` is read where ``model_name`` is absent, so a ``ClipEncoder.identity`` dict works as
is.) Without it (the Fondant layout), the pipeline's default model is assumed; explicit choices (CLI
flags) override both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from clip_assets.model_defaults import DEFAULT_MODEL_NAME, DEFAULT_PRETRAINED


@dataclass(frozen=True)
class QueryModel:
    """An open_clip model identity plus the device to run it on."""

    model_name: str = DEFAULT_MODEL_NAME
    pretrained: str | None = DEFAULT_PRETRAINED
    device: str = "auto"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryModel:
        """From a ``model.json`` dict; missing fields take the defaults."""
        return cls(
            model_name=data.get("model_name") or data.get("model") or DEFAULT_MODEL_NAME,
            pretrained=data.get("pretrained", DEFAULT_PRETRAINED),
        )

    def override(
        self,
        *,
        model_name: str | None = None,
        pretrained: str | None = None,
        device: str | None = None,
    ) -> QueryModel:
        """A copy with the given (non-``None``) fields replaced."""
        changes = {"model_name": model_name, "pretrained": pretrained, "device": device}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_encoder(model: QueryModel) -> Any:
    """The ``ClipEncoder`` for ``model``, loaded once per process: indices embedded with the
    same model (several served at once) share it. torch is imported here, so embedding-only
    searches never pay for it."""
    with _lock:
        if model not in _encoders:
            from clip_assets.embed.encoder import ClipEncoder
            from clip_assets.embed.model_loading import ModelSpec

            # Queries come one or a few at a time: no decode threads to keep busy.
            spec = ModelSpec(
                model_name=model.model_name,
                pretrained=model.pretrained,
                device=model.device,
                num_workers=0,
            )
            _encoders[model] = ClipEncoder.load(spec)
        return _encoders[model]


_encoders: dict[QueryModel, Any] = {}
_lock = threading.Lock()
